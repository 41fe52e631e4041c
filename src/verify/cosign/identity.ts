import { X509Certificate, ASN1Obj } from '@sigstore/core';
import type { OIDCIdentityMatch } from '../types.ts';
import { fail } from './errors.ts';

export const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
export const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
export const OID_OTHERNAME_SAN = '1.3.6.1.4.1.57264.1.7';
const OID_SAN = '2.5.29.17';

export interface IdentityRule {
  issuer: RegExp;
  subject: RegExp;
  source: OIDCIdentityMatch;
}

export interface CertIdentity {
  /** OIDC issuer from 1.3.6.1.4.1.57264.1.8 (UTF8String), else .1.1 (raw bytes); "" if neither. */
  issuer: string;
  /** Every SAN: email, URI, DNS, IP and OtherName values, in certificate order. */
  sans: string[];
}

/**
 * Compiles a Go RE2 expression into a JS RegExp with the same meaning for the patterns people
 * write in `matchOIDCIdentity`. Like cosign (`regexp.MatchString`), matching is **unanchored**:
 * `^…$` must be written by the user, as Flux's docs do. Translated: a leading `(?flags)` group
 * (i, s, m), `(?P<name>` groups, `\A` and `\z`. Throws on syntax that is invalid in JS.
 */
export function compileGoRegexp(pattern: string): RegExp {
  let src = pattern;
  let flags = '';
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    const f = lead[1] ?? '';
    if (f.includes('U')) throw new Error('the RE2 U (ungreedy) flag is not supported');
    for (const c of f) if (!flags.includes(c)) flags += c;
    src = src.slice(lead[0].length);
  }
  src = src.replace(/\(\?P</g, '(?<').replace(/\\A/g, '^').replace(/\\z/g, '$');
  if (flags.includes('m') && /\\z/.test(pattern)) throw new Error('\\z with the m flag is not supported');
  return new RegExp(src, flags);
}

export function compileRules(rules: OIDCIdentityMatch[]): IdentityRule[] {
  return rules.map((r, i) => {
    const compile = (field: 'issuer' | 'subject'): RegExp => {
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

export function certIdentity(cert: X509Certificate): CertIdentity {
  return { issuer: certIssuer(cert), sans: subjectAltNames(cert) };
}

function certIssuer(cert: X509Certificate): string {
  const v2 = cert.extension(OID_ISSUER_V2);
  if (v2) {
    // extnValue OCTET STRING → DER UTF8String (tag 0x0c).
    const obj = v2.valueObj.subs[0];
    if (obj && obj.tag.number === 0x0c && !obj.tag.constructed) return obj.value.toString('utf8');
    fail('malformed', 'certificate issuer extension 1.3.6.1.4.1.57264.1.8 is not a UTF8String');
  }
  const v1 = cert.extension(OID_ISSUER_V1);
  if (v1) return v1.value.toString('utf8');
  return '';
}

/** GeneralNames of the SAN extension (RFC 5280 4.2.1.6). */
export function subjectAltNames(cert: X509Certificate): string[] {
  const ext = cert.extension(OID_SAN);
  if (!ext) return [];
  const out: string[] = [];
  // extnValue OCTET STRING → GeneralNames SEQUENCE
  for (const gn of ext.valueObj.subs[0]?.subs ?? []) {
    if (gn.tag.class !== 2) continue; // context-specific
    switch (gn.tag.number) {
      case 0: // otherName: SEQUENCE { type-id OID, [0] EXPLICIT value }
        out.push(otherNameValue(gn));
        break;
      case 1: // rfc822Name
      case 2: // dNSName
      case 6: // uniformResourceIdentifier
        out.push(gn.value.toString('utf8'));
        break;
      case 7: // iPAddress
        out.push(ipToString(gn.value));
        break;
      default:
        break;
    }
  }
  return out;
}

function otherNameValue(gn: ASN1Obj): string {
  const inner = gn.subs[1]?.subs[0];
  return inner ? inner.value.toString('utf8') : '';
}

function ipToString(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length === 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
    return parts.join(':');
  }
  return b.toString('hex');
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
