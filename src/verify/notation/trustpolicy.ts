// Notation OCI trust policy documents (version 1.0): parsing with Go encoding/json semantics,
// validation with notation-go's rules and error wording, statement selection, verification levels,
// and the x509.subject distinguished-name rules (notation-go internal/pkix).

import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { parseJSON } from '../../util/json.ts';
import { decodeUTF8Bytes, encodeUTF8Bytes, hasLoneSurrogate } from '../x509/names.ts';

export type ValidationType = 'integrity' | 'authenticity' | 'authenticTimestamp' | 'expiry' | 'revocation';
export type ValidationAction = 'enforce' | 'log' | 'skip';

export const VALIDATION_TYPES: ValidationType[] = ['integrity', 'authenticity', 'authenticTimestamp', 'expiry', 'revocation'];
const VALIDATION_ACTIONS: ValidationAction[] = ['enforce', 'log', 'skip'];

export interface VerificationLevel {
  name: string;
  enforcement: Record<ValidationType, ValidationAction>;
}

const LEVELS: Record<string, VerificationLevel> = {
  strict: { name: 'strict', enforcement: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'enforce', expiry: 'enforce', revocation: 'enforce' } },
  permissive: { name: 'permissive', enforcement: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' } },
  audit: { name: 'audit', enforcement: { integrity: 'enforce', authenticity: 'log', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' } },
  skip: { name: 'skip', enforcement: { integrity: 'skip', authenticity: 'skip', authenticTimestamp: 'skip', expiry: 'skip', revocation: 'skip' } },
};

export interface SignatureVerification {
  level: string;
  override?: Record<string, string>;
  verifyTimestamp?: string;
}

export interface TrustPolicyStatement {
  name: string;
  registryScopes: string[];
  signatureVerification: SignatureVerification;
  trustStores: string[];
  trustedIdentities: string[];
}

export interface TrustPolicyDocument {
  version: string;
  trustPolicies: TrustPolicyStatement[];
}

export class TrustPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustPolicyError';
  }
}

const TRUST_POLICY_LINK = 'https://notaryproject.dev/docs/quickstart/#create-a-trust-policy';
export const TRUST_STORE_TYPES = ['ca', 'signingAuthority', 'tsa'] as const;
export type TrustStoreType = (typeof TRUST_STORE_TYPES)[number];

// ---------------------------------------------------------------------------------------------
// Parsing with encoding/json semantics: case-insensitive keys (exact match preferred), unknown keys
// ignored, null = zero value, wrong JSON types are an error.

function field(obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

function malformed(detail: string): TrustPolicyError {
  return new TrustPolicyError(`malformed trust policy: ${detail}`);
}

function str(v: unknown, what: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw malformed(`${what} must be a string`);
  return v;
}

function strList(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw malformed(`${what} must be an array of strings`);
  return v.map((x, i) => {
    if (typeof x !== 'string') throw malformed(`${what}[${i}] must be a string`);
    return x;
  });
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw malformed(`${what} must be an object`);
  return v as Record<string, unknown>;
}

export function parseTrustPolicy(bytes: Uint8Array | string): TrustPolicyDocument {
  let raw: unknown;
  try {
    raw = parseJSON(bytes, 'the trust policy', DefaultLimits.maxJSONDepth);
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw malformed((e as Error).message);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw malformed('the document must be a JSON object');
  const doc = raw as Record<string, unknown>;
  const tpRaw = field(doc, 'trustPolicies');
  if (tpRaw !== undefined && tpRaw !== null && !Array.isArray(tpRaw)) throw malformed('trustPolicies must be an array');
  const trustPolicies = ((tpRaw as unknown[] | null | undefined) ?? []).map((s, i): TrustPolicyStatement => {
    const st = obj(s, `trustPolicies[${i}]`);
    const sv = obj(field(st, 'signatureVerification'), `trustPolicies[${i}].signatureVerification`);
    const ovRaw = field(sv, 'override');
    let override: Record<string, string> | undefined;
    if (ovRaw !== undefined && ovRaw !== null) {
      const o = obj(ovRaw, `trustPolicies[${i}].signatureVerification.override`);
      override = {};
      for (const [k, v] of Object.entries(o)) override[k] = str(v, `override.${k}`);
    }
    const verifyTimestamp = str(field(sv, 'verifyTimestamp'), 'verifyTimestamp');
    return {
      name: str(field(st, 'name'), 'name'),
      registryScopes: strList(field(st, 'registryScopes'), 'registryScopes'),
      signatureVerification: {
        level: str(field(sv, 'level'), 'level'),
        ...(override ? { override } : {}),
        ...(verifyTimestamp ? { verifyTimestamp } : {}),
      },
      trustStores: strList(field(st, 'trustStores'), 'trustStores'),
      trustedIdentities: strList(field(st, 'trustedIdentities'), 'trustedIdentities'),
    };
  });
  return { version: str(field(doc, 'version'), 'version'), trustPolicies };
}

// ---------------------------------------------------------------------------------------------
// Validation (notation-go OCIDocument.Validate + validatePolicyCore).

export function getVerificationLevel(sv: SignatureVerification): VerificationLevel {
  if (!sv.level) throw new TrustPolicyError('signature verification level is empty or missing in the trust policy statement');
  const base = LEVELS[sv.level];
  if (!base) throw new TrustPolicyError(`invalid signature verification level "${sv.level}"`);
  const override = sv.override ?? {};
  if (Object.keys(override).length === 0) return base;
  if (base.name === 'skip') throw new TrustPolicyError(`signature verification level "skip" can't be used to customize signature verification`);
  const custom: VerificationLevel = { name: 'custom', enforcement: { ...base.enforcement } };
  for (const [key, value] of Object.entries(override)) {
    if (!VALIDATION_TYPES.includes(key as ValidationType)) {
      throw new TrustPolicyError(`verification type "${key}" in custom signature verification is not supported, supported values are [${VALIDATION_TYPES.map((t) => `"${t}"`).join(' ')}]`);
    }
    if (!VALIDATION_ACTIONS.includes(value as ValidationAction)) {
      throw new TrustPolicyError(`verification action "${value}" in custom signature verification is not supported, supported values are [${VALIDATION_ACTIONS.map((t) => `"${t}"`).join(' ')}]`);
    }
    if (key === 'integrity') throw new TrustPolicyError(`"integrity" verification can not be overridden in custom signature verification`);
    if (key !== 'revocation' && value === 'skip') throw new TrustPolicyError(`"${key}" verification can not be skipped in custom signature verification`);
    custom.enforcement[key as ValidationType] = value as ValidationAction;
  }
  return custom;
}

const STORE_NAME_RE = /^[a-zA-Z0-9_.-]+$/;

function validateCore(st: TrustPolicyStatement): void {
  const name = st.name;
  if (!name) throw new TrustPolicyError('a trust policy statement is missing a name, every statement requires a name');
  let level: VerificationLevel;
  try {
    level = getVerificationLevel(st.signatureVerification);
    const vt = st.signatureVerification.verifyTimestamp ?? '';
    if (vt !== '' && vt !== 'always' && vt !== 'afterCertExpiry') {
      throw new TrustPolicyError(`verifyTimestamp must be "always" or "afterCertExpiry", but got "${vt}"`);
    }
  } catch (e) {
    throw new TrustPolicyError(`trust policy statement "${name}" has invalid signatureVerification: ${(e as Error).message}`);
  }
  if (level.name === 'skip') {
    if (st.trustStores.length > 0 || st.trustedIdentities.length > 0) {
      throw new TrustPolicyError(`trust policy statement "${name}" is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped`);
    }
    return;
  }
  if (st.trustStores.length === 0 || st.trustedIdentities.length === 0) {
    throw new TrustPolicyError(`trust policy statement "${name}" is either missing trust stores or trusted identities, both must be specified`);
  }
  for (const ts of st.trustStores) {
    const i = ts.indexOf(':');
    if (i < 0) throw new TrustPolicyError(`trust policy statement "${name}" has malformed trust store value "${ts}". The required format is <TrustStoreType>:<TrustStoreName>`);
    const type = ts.slice(0, i);
    const store = ts.slice(i + 1);
    if (!(TRUST_STORE_TYPES as readonly string[]).includes(type)) {
      throw new TrustPolicyError(`trust policy statement "${name}" uses an unsupported trust store type "${type}" in trust store value "${ts}"`);
    }
    if (!STORE_NAME_RE.test(store)) {
      throw new TrustPolicyError(`trust policy statement "${name}" uses an unsupported trust store name "${store}" in trust store value "${ts}". Named store name needs to follow [a-zA-Z0-9_.-]+ format`);
    }
  }
  validateTrustedIdentities(name, st.trustedIdentities);
}

const MaxDNLength = 4096;

function validateTrustedIdentities(name: string, identities: string[]): void {
  if (identities.length > 1 && identities.includes('*')) {
    throw new TrustPolicyError(`trust policy statement "${name}" uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values`);
  }
  const parsed: { raw: string; dn: ReadonlyMap<string, string> }[] = [];
  for (const identity of identities) {
    if (identity === '') throw new TrustPolicyError(`trust policy statement "${name}" has an empty trusted identity`);
    if (identity === '*') continue;
    const i = identity.indexOf(':');
    if (i < 0) throw new TrustPolicyError(`trust policy statement "${name}" has trusted identity "${identity}" missing separator`);
    const prefix = identity.slice(0, i);
    const value = identity.slice(i + 1);
    if (prefix !== 'x509.subject') continue;
    if (value === '') throw new TrustPolicyError(`trust policy statement "${name}" has trusted identity "${identity}" without an identity value`);
    // Real subjects are a few hundred characters; a 500 KB one took seconds to parse and to echo back in the error.
    if (value.length > MaxDNLength) throw new TrustPolicyError(`trust policy statement "${name}" has a trusted identity of ${value.length} characters ("${identity.slice(0, 80)}…"), more than ${MaxDNLength}`);
    if (hasLoneSurrogate(value)) throw new TrustPolicyError(`trust policy statement "${name}" has trusted identity "${identity}" that is not valid Unicode (an unpaired surrogate)`);
    let dn: ReadonlyMap<string, string>;
    try {
      dn = parseDistinguishedName(value);
    } catch (e) {
      throw new TrustPolicyError(`trust policy statement "${name}" has trusted identity "${identity}" with invalid identity value: ${(e as Error).message}`);
    }
    parsed.push({ raw: identity, dn });
  }
  for (let i = 0; i < parsed.length; i++) {
    for (let j = 0; j < parsed.length; j++) {
      if (i !== j && isSubsetDN(parsed[i]!.dn, parsed[j]!.dn)) {
        throw new TrustPolicyError(`trust policy statement "${name}" has overlapping x509 trustedIdentities, "${parsed[i]!.raw}" overlaps with "${parsed[j]!.raw}"`);
      }
    }
  }
}

const DOMAIN_RE = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?$/;
const REPOSITORY_RE = /^[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$/;

export function validateRegistryScopeFormat(scope: string): void {
  const ensure = 'make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository or a local scope like local/myOCILayout';
  if (scope.length > 1 && scope.includes('*')) throw new TrustPolicyError(`registry scope "${scope}" with wild card(s) is not valid, ${ensure}`);
  const i = scope.indexOf('/');
  // Built only when thrown: this runs for every verification, and an Error captures a stack.
  const bad = () => new TrustPolicyError(`registry scope ${JSON.stringify(scope)} is not valid, ${ensure}`);
  if (i < 0) throw bad();
  const domain = scope.slice(0, i);
  const repo = scope.slice(i + 1);
  if (!domain || !repo || !DOMAIN_RE.test(domain) || !REPOSITORY_RE.test(repo)) throw bad();
}

export function validateTrustPolicy(doc: TrustPolicyDocument): void {
  if (!doc.version) throw new TrustPolicyError('oci trust policy document has empty version, version must be specified');
  if (doc.version !== '1.0') throw new TrustPolicyError(`oci trust policy document uses unsupported version "${doc.version}"`);
  if (doc.trustPolicies.length === 0) throw new TrustPolicyError('oci trust policy document can not have zero trust policy statements');
  const names = new Set<string>();
  for (const st of doc.trustPolicies) {
    if (names.has(st.name)) throw new TrustPolicyError(`multiple oci trust policy statements use the same name "${st.name}", statement names must be unique`);
    try {
      validateCore(st);
    } catch (e) {
      throw new TrustPolicyError(`oci trust policy: ${(e as Error).message}`);
    }
    names.add(st.name);
  }
  const count = new Map<string, number>();
  for (const st of doc.trustPolicies) {
    if (st.registryScopes.length === 0) {
      throw new TrustPolicyError(`oci trust policy statement "${st.name}" has zero registry scopes, it must specify registry scopes with at least one value`);
    }
    if (st.registryScopes.length > 1 && st.registryScopes.includes('*')) {
      throw new TrustPolicyError(`oci trust policy statement "${st.name}" uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values`);
    }
    for (const scope of st.registryScopes) {
      if (scope !== '*') validateRegistryScopeFormat(scope);
      count.set(scope, (count.get(scope) ?? 0) + 1);
    }
  }
  for (const [scope, n] of count) {
    if (n > 1) throw new TrustPolicyError(`registry scope "${scope}" is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement`);
  }
}

/** The statement for `<registry>/<repository>@<digest>`: exact scope wins over `*`. */
export function selectStatement(doc: TrustPolicyDocument, artifactReference: string): TrustPolicyStatement {
  const at = artifactReference.lastIndexOf('@');
  if (at < 0) {
    throw new TrustPolicyError(`artifact URI "${artifactReference}" could not be parsed, make sure it is the fully qualified oci artifact URI without the scheme/protocol. e.g domain.com:80/my/repository@sha256:digest`);
  }
  const path = artifactReference.slice(0, at);
  validateRegistryScopeFormat(path);
  let wildcard: TrustPolicyStatement | undefined;
  let exact: TrustPolicyStatement | undefined;
  for (const st of doc.trustPolicies) {
    if (st.registryScopes.includes('*')) wildcard = st;
    else if (st.registryScopes.includes(path)) exact = st;
  }
  const found = exact ?? wildcard;
  if (!found) {
    throw new TrustPolicyError(`artifact "${artifactReference}" has no applicable oci trust policy statement. Trust policy applicability for a given artifact is determined by registryScopes. To create a trust policy, see: ${TRUST_POLICY_LINK}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Distinguished names (RFC 4514 syntax as go-ldap ParseDN reads it; notation-go pkix rules).

/**
 * RFC 4514 as go-ldap's ParseDN reads it. Values are compared by code point: unquoted values collect UTF-8
 * bytes (characters, and `\XX` hex escapes as raw bytes) and decode them once at the end, so astral
 * characters survive and bytes that are not UTF-8 stay distinct (decodeUTF8Bytes) instead of all
 * becoming U+FFFD.
 */
function parseRawDN(s: string): { type: string; value: string }[][] {
  const rdns: { type: string; value: string }[][] = [];
  let rdn: { type: string; value: string }[] = [];
  let i = 0;
  const n = s.length;
  const fail = (m: string) => new Error(m);
  /** The whole character (code point) at `j`, not one UTF-16 unit. */
  const charAt = (j: number): string => String.fromCodePoint(s.codePointAt(j)!);
  if (s.trim() === '') return [];
  while (i <= n) {
    // attribute type
    let type = '';
    while (i < n && s[i] !== '=') {
      if (s[i] === ',' || s[i] === '+' || s[i] === ';') throw fail(`DN ended with incomplete type, value pair`);
      type += s[i++];
    }
    if (i >= n) throw fail('DN ended with incomplete type, value pair');
    i++; // '='
    type = type.trim();
    if (!type) throw fail('incomplete type, value pair');
    // value
    let value = '';
    while (i < n && s[i] === ' ') i++;
    if (s[i] === '"') {
      i++;
      while (i < n && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < n) i++;
        const ch = charAt(i);
        value += ch;
        i += ch.length;
      }
      if (s[i] !== '"') throw fail('unterminated quoted value');
      i++;
      while (i < n && s[i] === ' ') i++;
    } else {
      const bytes: number[] = [];
      let lastEscapedAt = 0;
      while (i < n && s[i] !== ',' && s[i] !== '+' && s[i] !== ';') {
        if (s[i] === '\\') {
          const h = s.slice(i + 1, i + 3);
          if (/^[0-9a-fA-F]{2}$/.test(h)) {
            bytes.push(parseInt(h, 16));
            i += 3;
          } else if (i + 1 < n) {
            const ch = charAt(i + 1);
            bytes.push(...encodeUTF8Bytes(ch));
            i += 1 + ch.length;
          } else throw fail('got corrupted escaped character');
          lastEscapedAt = bytes.length;
        } else {
          const ch = charAt(i);
          bytes.push(...encodeUTF8Bytes(ch));
          i += ch.length;
        }
      }
      // trim unescaped trailing spaces
      let end = bytes.length;
      while (end > lastEscapedAt && bytes[end - 1] === 0x20) end--;
      value = decodeUTF8Bytes(Uint8Array.from(bytes.slice(0, end)));
    }
    rdn.push({ type, value });
    if (i >= n) {
      rdns.push(rdn);
      break;
    }
    const sep = s[i];
    i++;
    if (sep === ',' || sep === ';') {
      rdns.push(rdn);
      rdn = [];
    }
    if (i >= n) throw fail('DN ended with incomplete type, value pair');
  }
  return rdns;
}

/**
 * Parsed names by their text: every verification matches the same signer's subject against the same
 * trusted identities, and parsing was a tenth of a Notation verification. Only successes of real
 * size are kept (a bad name throws its error each time; a huge one is parsed each time rather than
 * held), and the maps are never handed out for writing.
 */
const parsedDNs = new Map<string, ReadonlyMap<string, string>>();
const ParsedDNsMax = 512;
const ParsedDNMaxLength = 1024;

/** notation-go `pkix.ParseDistinguishedName`: map of attribute type → value; C, ST and O mandatory. */
export function parseDistinguishedName(name: string): ReadonlyMap<string, string> {
  let dn = parsedDNs.get(name);
  if (!dn) {
    dn = parseDN(name);
    if (name.length > ParsedDNMaxLength) return dn;
    parsedDNs.set(name, dn);
    if (parsedDNs.size > ParsedDNsMax) parsedDNs.delete(parsedDNs.keys().next().value!);
  }
  return dn;
}

function parseDN(name: string): Map<string, string> {
  if (name.includes('=#')) {
    throw new TrustPolicyError(`unsupported distinguished name (DN) "${name}": notation does not support x509.subject identities containing "=#"`);
  }
  let rdns: { type: string; value: string }[][];
  try {
    rdns = parseRawDN(name);
  } catch (e) {
    throw new TrustPolicyError(`parsing distinguished name (DN) "${name}" failed with err: ${(e as Error).message}. A valid DN must contain 'C', 'ST', and 'O' RDN attributes at a minimum, and follow RFC 4514 standard`);
  }
  const out = new Map<string, string>();
  for (const rdn of rdns) {
    if (rdn.length > 1) {
      throw new TrustPolicyError(`distinguished name (DN) "${name}" has multi-valued RDN attributes, remove multi-valued RDN attributes as they are not supported`);
    }
    for (const a of rdn) {
      const type = a.type === 'S' ? 'ST' : a.type;
      if (out.get(type)) throw new TrustPolicyError(`distinguished name (DN) "${name}" has duplicate RDN attribute for "${type}", DN can only have unique RDN attributes`);
      out.set(type, a.value);
    }
  }
  for (const f of ['C', 'ST', 'O']) {
    if (!out.get(f)) {
      throw new TrustPolicyError(`distinguished name (DN) "${name}" has no mandatory RDN attribute for "${f}", it must contain 'C', 'ST', and 'O' RDN attributes at a minimum`);
    }
  }
  return out;
}

/** Every attribute of dn1 is present with the same value in dn2. */
export function isSubsetDN(dn1: ReadonlyMap<string, string>, dn2: ReadonlyMap<string, string>): boolean {
  for (const [k, v] of dn1) if (dn2.get(k) !== v) return false;
  return true;
}

/** Canonical JSON of a document (for fingerprints): keys in a fixed order. */
export function normalizeTrustPolicy(doc: TrustPolicyDocument): string {
  return JSON.stringify({
    version: doc.version,
    trustPolicies: doc.trustPolicies.map((s) => ({
      name: s.name,
      registryScopes: s.registryScopes,
      signatureVerification: {
        level: s.signatureVerification.level,
        override: Object.fromEntries(Object.entries(s.signatureVerification.override ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))),
        verifyTimestamp: s.signatureVerification.verifyTimestamp ?? '',
      },
      trustStores: s.trustStores,
      trustedIdentities: s.trustedIdentities,
    })),
  });
}
