// The OCIRepository API's names, and the check for object names that go into API paths. Kept
// apart from schema.ts so that the controller does not load TypeBox to read a few constants.
export const Group = 'source.ocisource.dev';
export const Version = 'v1';
export const Kind = 'OCIRepository';
export const Plural = 'ocirepositories';
export const Singular = 'ocirepository';
export const ShortName = 'ocirepo';
export const ApiVersion = `${Group}/${Version}`;
export const Finalizer = 'finalizers.ocisource.dev';
export const ReconcileRequestAnnotation = 'reconcile.ocisource.dev/requestedAt';

// Names of Secrets and ServiceAccounts are DNS-1123 subdomains (what the apiserver accepts for
// those objects). The CRD schema (schema.ts) checks them, so the apiserver refuses a bad spec,
// and isDNS1123Subdomain checks them again before a name goes into an API path, for objects
// stored before the schema checked them.
export const DNS1123SubdomainPattern = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123SubdomainMaxLength = 253;
const dns1123Subdomain = new RegExp(DNS1123SubdomainPattern);

/** True for a valid Kubernetes object name of the DNS-1123 subdomain kind (Secret, ServiceAccount). */
export function isDNS1123Subdomain(name: string): boolean {
  return name.length <= DNS1123SubdomainMaxLength && dns1123Subdomain.test(name);
}
