// Every OCI trust policy of notation/test/e2e/testdata/config/trustpolicies (INDEX §2) through
// prepare(): valid ones load; invalid ones are a VerifyConfigError naming the Secret and key, with
// notation-go's wording. Selection/verification outcomes are in e2e-layouts.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { E2E, KEY, POLICY, read, secret } from './fixtures.ts';
import { prepareNotation } from '../../../src/verify/notation/index.ts';
import { VerifyConfigError } from '../../../src/verify/types.ts';
import { parseDistinguishedName, parseTrustPolicy, selectStatement, validateTrustPolicy } from '../../../src/verify/notation/trustpolicy.ts';

const certs = { 'ca.e2e.crt': read(KEY('e2e.crt')) };

function prepareWith(file: string, key = 'trustpolicy.json') {
  return prepareNotation({ provider: 'notation', secret: secret({ [key]: read(POLICY(file)), ...certs }, 'flux-system/notation-trust') });
}

const VALID = [
  'trustpolicy.json',
  'any_registry_scope_trust_policy.json',
  'permissive_trustpolicy.json',
  'audit_trustpolicy.json',
  'skip_trustpolicy.json', // skip is accepted with the global scope '*'
  'registry_scope_trustpolicy.json',
  'multiple_registry_scope_trustpolicy.json',
  'invalid_registry_scope_trustpolicy.json', // valid document; no statement applies at verification time
  'multi_statements_with_wildcard_registry_scope_trustpolicy.json',
  'invalid_trust_store_trustpolicy.json', // store existence is checked at verification time
  'multiple_trust_store_trustpolicy.json',
  'overlapped_trust_store_trustpolicy.json',
  'valid_trusted_identity_trustpolicy.json',
  'invalid_trusted_identity_trustpolicy.json', // valid DN that does not match
  'multiple_trusted_identity_trustpolicy.json',
  'override_strict_trustpolicy.json',
  'override_permissive_trustpolicy.json',
  'override_audit_trustpolicy.json',
  'timestamp_trustpolicy.json',
  'timestamp_after_cert_expiry_trustpolicy.json',
  'quickstart_trustpolicy.json',
  'generate_test_trustpolicy.json',
];

const INVALID: Record<string, { code: string; message: string }> = {
  'empty_registry_scope_trustpolicy.json': { code: 'invalid-policy', message: 'oci trust policy statement "e2e" has zero registry scopes, it must specify registry scopes with at least one value' },
  'malformed_registry_scope_trustpolicy.json': {
    code: 'invalid-policy',
    message: 'registry scope "localhost:5000\\\\test-repo" is not valid, make sure it is a fully qualified repository without the scheme, protocol or tag.',
  },
  'overlapped_registry_scope_trustpolicy.json': {
    code: 'invalid-policy',
    message: 'registry scope "localhost:5000/test-repo6" is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement',
  },
  'wildcard_plus_other_registry_scope_trustpolicy.json': {
    code: 'invalid-policy',
    message: `oci trust policy statement "e2e" uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values`,
  },
  'multi_statements_with_the_same_registry_scope_trustpolicy.json': {
    code: 'invalid-policy',
    message: 'registry scope "localhost:5000/test-repo8" is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement',
  },
  'multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json': { code: 'invalid-policy', message: 'registry scope "*" is present in multiple oci trust policy statements' },
  'multi_statements_with_the_same_name_trustpolicy.json': { code: 'invalid-policy', message: 'multiple oci trust policy statements use the same name "e2e", statement names must be unique' },
  'unset_trust_store_trustpolicy.json': { code: 'invalid-policy', message: 'trust policy statement "e2e" is either missing trust stores or trusted identities, both must be specified' },
  'unset_trusted_identity_trustpolicy.json': { code: 'invalid-policy', message: 'trust policy statement "e2e" is either missing trust stores or trusted identities, both must be specified' },
  'malformed_trust_store_trustpolicy.json': {
    code: 'invalid-policy',
    message: 'trust policy statement "e2e" uses an unsupported trust store name "" in trust store value "ca:". Named store name needs to follow [a-zA-Z0-9_.-]+ format',
  },
  'wildcard_trust_store_trustpolicy.json': { code: 'invalid-policy', message: 'trust policy statement "e2e" has malformed trust store value "*". The required format is <TrustStoreType>:<TrustStoreName>' },
  'malformed_trusted_identity_trustpolicy.json': {
    code: 'invalid-policy',
    message: 'trust policy statement "e2e" has trusted identity "x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US" missing separator',
  },
  'empty_trusted_identity_trustpolicy.json': { code: 'invalid-policy', message: 'trust policy statement "e2e" has an empty trusted identity' },
  'overlapped_trusted_identity_trustpolicy.json': { code: 'invalid-policy', message: 'trust policy statement "e2e" has overlapping x509 trustedIdentities' },
  'wildcard_plus_other_trusted_identity_trustpolicy.json': {
    code: 'invalid-policy',
    message: `trust policy statement "e2e" uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values`,
  },
  'missing_organization_trusted_identity_trustpolicy.json': {
    code: 'invalid-policy',
    message: `distinguished name (DN) " CN=e2e,L=Seattle,ST=WA,C=US" has no mandatory RDN attribute for "O", it must contain 'C', 'ST', and 'O' RDN attributes at a minimum`,
  },
  'missing_state_trusted_identity_trustpolicy.json': {
    code: 'invalid-policy',
    message: `distinguished name (DN) " CN=e2e,O=Notary,L=Seattle,C=US" has no mandatory RDN attribute for "ST", it must contain 'C', 'ST', and 'O' RDN attributes at a minimum`,
  },
  'missing_country_trusted_identity_trustpolicy.json': {
    code: 'invalid-policy',
    message: `has no mandatory RDN attribute for "C", it must contain 'C', 'ST', and 'O' RDN attributes at a minimum`,
  },
  'override_integrity_for_permissive_trustpolicy.json': { code: 'invalid-policy', message: '"integrity" verification can not be overridden in custom signature verification' },
  'invalid_format_trustpolicy.json': { code: 'malformed-policy', message: 'malformed trust policy' },
  // A blob policy document (no registryScopes) is not an OCI policy.
  'blob_trust_policy.json': { code: 'invalid-policy', message: 'oci trust policy statement "wabbit-networks-policy" has zero registry scopes' },
};

describe('trust policy vectors', () => {
  test('every file in the vector folder is covered', () => {
    const files = readdirSync(E2E('config', 'trustpolicies')).filter((f) => f.endsWith('.json')).sort();
    assert.equal(files.length, 43);
    assert.deepEqual(files, [...VALID, ...Object.keys(INVALID)].sort());
  });
  for (const f of VALID) {
    test(`${f} is valid`, () => {
      const p = prepareWith(f);
      assert.match(p.fingerprint, /^[0-9a-f]{64}$/);
    });
  }
  for (const [f, exp] of Object.entries(INVALID)) {
    test(`${f} → ${exp.code}`, () => {
      assert.throws(
        () => prepareWith(f),
        (e: unknown) => {
          assert.ok(e instanceof VerifyConfigError, String(e));
          assert.equal(e.code, exp.code);
          assert.ok(e.message.startsWith("secret flux-system/notation-trust: key 'trustpolicy.json': "), e.message);
          assert.ok(e.message.includes(exp.message), `${e.message}\n  does not include\n${exp.message}`);
          return true;
        },
      );
    });
  }
  test('the blob policy of the blob e2e suite is not an OCI policy either', () => {
    const doc = parseTrustPolicy(read(E2E('blob', 'trustpolicies', 'trustpolicy.blob.json')));
    assert.throws(() => validateTrustPolicy(doc), /oci trust policy statement "test-blob-statement" has zero registry scopes/);
  });
});

describe('trust policy loading rules', () => {
  const base = read(POLICY('trustpolicy.json')).toString();
  test('trustpolicy.oci.json is accepted and preferred', () => {
    const p = prepareNotation({ provider: 'notation', secret: secret({ 'trustpolicy.oci.json': base, 'trustpolicy.json': 'not json', ...certs }) });
    assert.ok(p.notes.some((n) => n.includes("'trustpolicy.oci.json' is used")));
  });
  test('missing policy names the Secret', () => {
    assert.throws(() => prepareNotation({ provider: 'notation', secret: secret(certs, 'ns/s') }), (e: unknown) => e instanceof VerifyConfigError && e.code === 'no-policy' && e.message.includes("'trustpolicy.json' not found in secret 'ns/s'"));
  });
  test('no certificates at all', () => {
    assert.throws(() => prepareNotation({ provider: 'notation', secret: secret({ 'trustpolicy.json': base }) }), (e: unknown) => e instanceof VerifyConfigError && e.code === 'no-certificates');
  });
  test('a skip-only policy needs no certificates', () => {
    const p = prepareNotation({ provider: 'notation', secret: secret({ 'trustpolicy.json': read(POLICY('skip_trustpolicy.json')) }) });
    assert.equal(p.provider, 'notation');
  });
  test('Go JSON semantics: case-insensitive keys, unknown keys ignored, oci/blob wrapper has zero statements', () => {
    const doc = parseTrustPolicy('{"Version":"1.0","TRUSTPOLICIES":[{"Name":"a","registryscopes":["*"],"signatureverification":{"LEVEL":"strict"},"truststores":["ca:x"],"trustedidentities":["*"],"extra":1}]}');
    validateTrustPolicy(doc);
    assert.equal(doc.trustPolicies[0]!.name, 'a');
    assert.throws(() => validateTrustPolicy(parseTrustPolicy('{"version":"1.0","oci":{"trustPolicies":[]}}')), /can not have zero trust policy statements/);
    assert.throws(() => validateTrustPolicy(parseTrustPolicy('{"version":"2.0","trustPolicies":[]}')), /unsupported version "2.0"/);
    assert.throws(() => validateTrustPolicy(parseTrustPolicy('{"trustPolicies":[]}')), /has empty version/);
    assert.throws(() => parseTrustPolicy('{"version":1}'), /malformed trust policy/);
  });
  const withSV = (sv: unknown, extra: Record<string, unknown> = {}) =>
    parseTrustPolicy(JSON.stringify({ version: '1.0', trustPolicies: [{ name: 't', registryScopes: ['*'], signatureVerification: sv, trustStores: ['ca:x'], trustedIdentities: ['*'], ...extra }] }));
  test('levels and overrides follow notation-go', () => {
    assert.throws(() => validateTrustPolicy(withSV({ level: 'invalid' })), /has invalid signatureVerification: invalid signature verification level "invalid"/);
    assert.throws(() => validateTrustPolicy(withSV({})), /signature verification level is empty or missing/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'strict', override: { authenticTimestamp: 'skip' } })), /"authenticTimestamp" verification can not be skipped in custom signature verification/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'strict', override: { expiry: 'maybe' } })), /verification action "maybe" in custom signature verification is not supported/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'strict', override: { foo: 'log' } })), /verification type "foo" in custom signature verification is not supported/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'skip', override: { revocation: 'log' } }, { trustStores: [], trustedIdentities: [] })), /"skip" can't be used to customize/);
    validateTrustPolicy(withSV({ level: 'strict', override: { revocation: 'skip' } }));
    assert.throws(() => validateTrustPolicy(withSV({ level: 'strict', verifyTimestamp: 'sometimes' })), /verifyTimestamp must be "always" or "afterCertExpiry", but got "sometimes"/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'skip' })), /is set to skip signature verification but configured with trust stores and\/or trusted identities/);
    assert.throws(() => validateTrustPolicy(withSV({ level: 'strict' }, { trustStores: ['foo:x'] })), /unsupported trust store type "foo" in trust store value "foo:x"/);
  });
  test('scope formats (oci_test.go)', () => {
    for (const ok of ['example.com/rep', 'example.com:8080/rep/rep2', '10.10.10.10:8080/rep/rep2', 'domain/rep', 'domain:1234/rep']) {
      validateTrustPolicy(withSV({ level: 'strict' }, { registryScopes: [ok] }));
    }
    for (const bad of ['example.com', 'example.com/rep:tag', 'repository', 'example.com/*']) {
      assert.throws(() => validateTrustPolicy(withSV({ level: 'strict' }, { registryScopes: [bad] })), /registry scope .* is not valid/);
    }
  });
  test('selection: exact wins, then *, else notation-go wording', () => {
    const doc = parseTrustPolicy(read(POLICY('multi_statements_with_wildcard_registry_scope_trustpolicy.json')));
    assert.equal(selectStatement(doc, 'localhost:5000/test-repo9@sha256:aa').name, 'e2e');
    assert.equal(selectStatement(doc, 'localhost:5000/test-repo10@sha256:aa').name, 'e2e2');
    assert.throws(() => selectStatement(doc, 'localhost:5000/test-repo9'), /could not be parsed/);
  });
  test('DN parsing (pkix_test.go cases)', () => {
    assert.deepEqual([...parseDistinguishedName('C=US,ST=WA,O=MyOrg,CustomRDN=CustomValue')], [['C', 'US'], ['ST', 'WA'], ['O', 'MyOrg'], ['CustomRDN', 'CustomValue']]);
    assert.equal(parseDistinguishedName('C=US,ST=WA,O=  My.  Org').get('O'), 'My.  Org');
    assert.equal(parseDistinguishedName('C=US,ST=WA,O=My "special" Org \\, \\; \\\\ others').get('O'), 'My "special" Org , ; \\ others');
    assert.throws(() => parseDistinguishedName('C=US,C=IN'), /has duplicate RDN attribute for "C"/);
    assert.throws(() => parseDistinguishedName('C=US+ST=WA,O=x'), /multi-valued RDN attributes/);
    assert.throws(() => parseDistinguishedName('C=US,ST=WA,O=My Org,1.3.6.1.4.1.1466.0=#04024869'), /notation does not support x509.subject identities containing "=#"/);
    assert.equal(parseDistinguishedName('C=US,S=WA,O=x').get('ST'), 'WA');
  });
});
