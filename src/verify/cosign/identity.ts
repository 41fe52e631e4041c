import * as asn1js from 'asn1js';
import { RE2JS } from 're2js';
import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { errorText, fail } from '../errors.ts';
import type { OIDCIdentityMatch } from '../types.ts';
import { certExtensions, extensionValue, type Cert } from '../x509/certs.ts';
import { decodeUTF8Bytes, decodeUTF8Strict } from '../x509/names.ts';

export const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
export const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
/** Fulcio's "username" SAN: the only otherName type that is an identity (sigstore cryptoutils). */
export const OID_OTHERNAME_SAN = '1.3.6.1.4.1.57264.1.7';

export interface IdentityRule {
  issuer: Matcher;
  subject: Matcher;
  source: OIDCIdentityMatch;
}

export interface CertIdentity {
  /** OIDC issuer from 1.3.6.1.4.1.57264.1.8 (UTF8String), else .1.1 (raw bytes); "" if neither. */
  issuer: string;
  /** Every SAN that names an identity, in certificate order: email, URI, DNS, IP and the Fulcio otherName. */
  sans: string[];
}

/** A compiled `matchOIDCIdentity` expression. */
export interface Matcher {
  test(input: string): boolean;
}

/**
 * Compiles a `matchOIDCIdentity` expression with RE2's syntax and linear-time matching (re2js, a
 * port of the engine behind Go's regexp), so it means what it means to cosign and Flux: syntax RE2
 * lacks (backreferences, lookaround) is an error, and a pattern like `^(a+)+$` cannot backtrack
 * for hours on a certificate the registry chose. Like cosign (`regexp.MatchString`), matching is
 * **unanchored**: `^…$` must be written by the user, as Flux's docs do.
 */
export function compileGoRegexp(pattern: string): Matcher {
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    // re2js words its syntax errors as Go does ("error parsing regexp: …").
    throw new Error((err as Error).message);
  }
  return { test: (input) => re.matcher(input).find() };
}

export function compileRules(rules: OIDCIdentityMatch[]): IdentityRule[] {
  // Measured before anything is compiled: compiling is what costs.
  const total = rules.reduce((n, r) => n + (typeof r.issuer === 'string' ? r.issuer.length : 0) + (typeof r.subject === 'string' ? r.subject.length : 0), 0);
  const max = DefaultLimits.identityPatternsMaxLength;
  if (total > max) throw new LimitError('identityPatternsMaxLength', `the matchOIDCIdentity expressions are ${total} characters long together, more than ${max}`);
  return rules.map((r, i) => {
    const compile = (field: 'issuer' | 'subject'): Matcher => {
      const value = r[field];
      if (typeof value !== 'string' || value === '') throw new Error(`matchOIDCIdentity[${i}].${field} is empty`);
      try {
        return compileGoRegexp(value);
      } catch (err) {
        throw new Error(`matchOIDCIdentity[${i}].${field} is not a valid regular expression: ${(err as Error).message}`);
      }
    };
    return { issuer: compile('issuer'), subject: compile('subject'), source: { issuer: r.issuer, subject: r.subject } };
  });
}

export function certIdentity(cert: Cert): CertIdentity {
  return { issuer: certIssuer(cert), sans: subjectAltNames(cert) };
}

function certIssuer(cert: Cert): string {
  const v2 = extensionValue(cert, OID_ISSUER_V2);
  if (v2) {
    // extnValue → DER UTF8String
    const a = asn1js.fromBER(new Uint8Array(v2).buffer);
    if (a.offset !== v2.length || !(a.result instanceof asn1js.Utf8String)) fail('malformed', 'certificate issuer extension 1.3.6.1.4.1.57264.1.8 is not a UTF8String');
    try {
      return decodeUTF8Strict(a.result.valueBlock.valueHexView, 'certificate issuer extension 1.3.6.1.4.1.57264.1.8');
    } catch (err) {
      return fail('malformed', errorText(err));
    }
  }
  // .1.1 holds the issuer's raw bytes (sigstore-go: string(ext.Value)); bytes that are not UTF-8 stay distinct.
  const v1 = extensionValue(cert, OID_ISSUER_V1);
  return v1 ? decodeUTF8Bytes(v1) : '';
}

/** SAN values that are identities (cosign `getSubjectAlternateNames`); a malformed SAN extension is malformed. */
export function subjectAltNames(cert: Cert): string[] {
  let names;
  try {
    names = certExtensions(cert).subjectAltNames;
  } catch (err) {
    return fail('malformed', `the signing certificate's extensions do not parse: ${errorText(err)}`);
  }
  const out: string[] = [];
  for (const n of names) {
    if (n.type === 'email' || n.type === 'dns' || n.type === 'uri' || n.type === 'ip') out.push(n.value);
    else if (n.type === 'otherName' && n.oid === OID_OTHERNAME_SAN && n.value !== undefined) out.push(n.value);
  }
  return out;
}

/**
 * cosign's `CheckCertificatePolicy`: passes when any rule matches the issuer and any SAN. Returns
 * the matching rule; throws identity-mismatch otherwise.
 */
export function matchIdentity(id: CertIdentity, rules: IdentityRule[]): IdentityRule {
  for (const rule of rules) {
    if (!rule.issuer.test(id.issuer)) continue;
    if (id.sans.some((san) => rule.subject.test(san))) return rule;
  }
  const sans = id.sans.length ? id.sans.join(', ') : '(none)';
  return fail(
    'identity-mismatch',
    `certificate identity (issuer '${id.issuer}', subject ${sans}) matches no matchOIDCIdentity entry`,
  );
}
