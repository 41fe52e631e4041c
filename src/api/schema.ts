// The single source of truth for the OCIRepository API: these TypeBox definitions are both the
// OpenAPI v3 schema written into crds/ (by hack/gen-crd.ts) and, through `Static<>`, the
// TypeScript types the controller uses. A unit test fails when crds/ drifts from this file.
import { Kind as TypeBoxKind, Type, TypeRegistry, type Static, type TSchema } from '@sinclair/typebox';

// The API's names and the DNS-1123 check live in names.ts, which the controller imports without
// loading TypeBox (~15 MB of RSS a running controller has no use for).
export { ApiVersion, DNS1123SubdomainMaxLength, DNS1123SubdomainPattern, Finalizer, Group, isDNS1123Subdomain, Kind, Plural, ReconcileRequestAnnotation, ShortName, Singular, Version } from './names.ts';
import { ApiVersion, DNS1123SubdomainMaxLength, DNS1123SubdomainPattern, Group, Kind, Plural, ShortName, Singular, Version } from './names.ts';

// Kubernetes structural schemas want `enum` (not anyOf/const) and `additionalProperties` (not
// patternProperties); these two kinds emit that and teach TypeBox's Value.Check to validate them.
TypeRegistry.Set('StringEnum', (schema: { enum: string[] }, value) => typeof value === 'string' && schema.enum.includes(value));
TypeRegistry.Set('StringMap', (_schema, value) => typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string'));

/** A string enum as Kubernetes structural schemas want it. */
function StringEnum<T extends readonly string[]>(values: T, opts: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ [TypeBoxKind]: 'StringEnum', type: 'string', enum: [...values], ...opts });
}

/** map[string]string. */
function StringMap(description: string) {
  return Type.Unsafe<Record<string, string>>({ [TypeBoxKind]: 'StringMap', type: 'object', additionalProperties: { type: 'string' }, description });
}
const Doc = <T extends TSchema>(description: string, schema: T): T => ({ ...schema, description });

const DurationPattern = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
const TimeoutPattern = '^([0-9]+(\\.[0-9]+)?(ms|s|m))+$';

const ObjectName = (description: string) => Type.String({ description, maxLength: DNS1123SubdomainMaxLength, pattern: DNS1123SubdomainPattern });

export const LocalObjectReference = Type.Object(
  { name: ObjectName('Name of the referent (a Secret in the same namespace).') },
  { description: 'Reference to an object in the same namespace.' },
);

export const OCIRepositoryRef = Type.Object(
  {
    digest: Type.Optional(Type.String({ description: 'Image digest to pull (sha256:<hex>); takes precedence over semver and tag.', pattern: '^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$' })),
    semver: Type.Optional(Type.String({ description: 'Semver range (e.g. ">=1.0.0 <2.0.0"); the highest matching tag is pulled. Takes precedence over tag.' })),
    semverFilter: Type.Optional(Type.String({ description: 'Regular expression applied to tags before semver matching.' })),
    tag: Type.Optional(Type.String({ description: 'Image tag to pull; defaults to latest.' })),
  },
  { description: 'Which artifact to pull: digest > semver > tag > latest.' },
);

export const OCILayerSelector = Type.Object(
  {
    mediaType: Type.Optional(Type.String({ description: 'Media type of the layer to select; the first match is used. Defaults to the first layer.' })),
    operation: Type.Optional(StringEnum(['extract', 'copy'] as const, { description: 'extract (default) unpacks the tar+gzip layer and re-archives it; copy stores the blob unchanged.' })),
  },
  { description: 'Which layer of the artifact to store, and how.' },
);

export const OIDCIdentityMatch = Type.Object(
  {
    issuer: Type.String({ description: 'Regular expression for the OIDC issuer of the signing certificate.' }),
    subject: Type.String({ description: 'Regular expression for the identity (SAN) of the signing certificate.' }),
  },
  { description: 'Keyless identity rule; rules are OR-ed.' },
);

export const OCIRepositoryVerification = Type.Object(
  {
    provider: StringEnum(['cosign', 'notation'] as const, { default: 'cosign', description: 'Signature provider.' }),
    secretRef: Type.Optional(Doc('Secret with the trust material: cosign public keys (*.pub), or notation trustpolicy.json and certificates.', LocalObjectReference)),
    matchOIDCIdentity: Type.Optional(Type.Array(OIDCIdentityMatch, { description: 'Keyless (cosign) identity rules; at least one is needed for keyless verification.' })),
    trustedRootSecretRef: Type.Optional(Doc('Secret with key trusted_root.json: Sigstore trusted root for private Fulcio/Rekor/CT instances (cosign keyless).', LocalObjectReference)),
  },
  { description: 'Signature verification of the artifact before it is pulled.' },
);

export const OCIRepositorySpec = Type.Object(
  {
    url: Type.String({ pattern: '^oci://.*$', description: 'Repository address: oci://<host>[:port]/<repository>, without tag or digest.' }),
    ref: Type.Optional(OCIRepositoryRef),
    layerSelector: Type.Optional(OCILayerSelector),
    provider: Type.Optional(StringEnum(['generic', 'aws', 'azure', 'gcp'] as const, { default: 'generic', description: 'Registry credential provider: aws, azure or gcp use workload identity (the controller\'s, or serviceAccountName\'s with the ObjectLevelWorkloadIdentity feature gate) when no Secret provides credentials.' })),
    secretRef: Type.Optional(Doc('kubernetes.io/dockerconfigjson Secret with registry credentials.', LocalObjectReference)),
    verify: Type.Optional(OCIRepositoryVerification),
    serviceAccountName: Type.Optional(ObjectName('ServiceAccount whose imagePullSecrets are used for registry credentials; with provider aws, azure or gcp and the ObjectLevelWorkloadIdentity feature gate, also the identity whose cloud credentials are used.')),
    certSecretRef: Type.Optional(Doc('Secret with ca.crt and/or tls.crt + tls.key for the registry connection.', LocalObjectReference)),
    proxySecretRef: Type.Optional(Doc('Secret with address, username, password of an HTTP(S) proxy.', LocalObjectReference)),
    interval: Type.String({ pattern: DurationPattern, description: 'How often to check the registry for a new revision.' }),
    timeout: Type.Optional(Type.String({ pattern: TimeoutPattern, default: '60s', description: 'Timeout for every registry and verification operation of one reconcile.' })),
    ignore: Type.Optional(Type.String({ description: 'Extra .gitignore-style exclusions applied when re-archiving (extract only).' })),
    insecure: Type.Optional(Type.Boolean({ description: 'Allow plain HTTP, and skip TLS verification when no certSecretRef is set.' })),
    suspend: Type.Optional(Type.Boolean({ description: 'Stop reconciling this object.' })),
  },
  { description: 'OCIRepositorySpec defines the desired state of an OCIRepository.' },
);

export const Condition = Type.Object({
  type: Type.String({ maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' }),
  status: StringEnum(['True', 'False', 'Unknown'] as const),
  observedGeneration: Type.Optional(Type.Integer({ format: 'int64', minimum: 0 })),
  lastTransitionTime: Type.String({ format: 'date-time' }),
  reason: Type.String({ maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' }),
  message: Type.String({ maxLength: 32768 }),
});

export const Artifact = Type.Object(
  {
    path: Type.String({ description: 'Path of the artifact relative to the storage root.' }),
    url: Type.String({ description: 'HTTP address of the artifact.' }),
    revision: Type.String({ description: '<tag>@sha256:<hex>, or sha256:<hex> for a digest ref.' }),
    digest: Type.String({ pattern: '^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$', description: 'Digest of the stored file.' }),
    lastUpdateTime: Type.String({ format: 'date-time' }),
    size: Type.Optional(Type.Integer({ format: 'int64', description: 'Size of the stored file in bytes.' })),
    metadata: Type.Optional(StringMap('Annotations of the OCI manifest.')),
  },
  { description: 'The artifact stored and served for this object.' },
);

export const OCIRepositoryStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ format: 'int64' })),
    conditions: Type.Optional(Type.Array(Condition)),
    artifact: Type.Optional(Artifact),
    url: Type.Optional(Type.String({ description: 'Stable address of the latest artifact.' })),
    observedIgnore: Type.Optional(Type.String()),
    observedLayerSelector: Type.Optional(OCILayerSelector),
    lastHandledReconcileAt: Type.Optional(Type.String()),
  },
  { description: 'OCIRepositoryStatus is the observed state of an OCIRepository.' },
);

export type OCIRepositorySpec = Static<typeof OCIRepositorySpec>;
export type OCIRepositoryStatus = Static<typeof OCIRepositoryStatus>;
export type OCIRepositoryVerification = Static<typeof OCIRepositoryVerification>;
export type OCILayerSelector = Static<typeof OCILayerSelector>;
export type Condition = Static<typeof Condition>;
export type Artifact = Static<typeof Artifact>;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface OCIRepository {
  apiVersion: typeof ApiVersion;
  kind: typeof Kind;
  metadata: ObjectMeta;
  spec: OCIRepositorySpec;
  status?: OCIRepositoryStatus;
}

/** Printer columns of `kubectl get ocirepo`. */
const readyCond = '.status.conditions[?(@.type=="Ready")]';
export const PrinterColumns = [
  { name: 'URL', type: 'string', jsonPath: '.spec.url' },
  { name: 'Ready', type: 'string', jsonPath: `${readyCond}.status` },
  { name: 'Verified', type: 'string', jsonPath: '.status.conditions[?(@.type=="SourceVerified")].status' },
  { name: 'Status', type: 'string', jsonPath: `${readyCond}.message` },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  { name: 'Revision', type: 'string', jsonPath: '.status.artifact.revision', priority: 1 },
];

/** Strips TypeBox's symbol keys and `Optional` markers: plain JSON Schema for the CRD. */
function toOpenAPI(schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema));
}

/** The CustomResourceDefinition, as an object ready to serialise to YAML. */
export function customResourceDefinition(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${Plural}.${Group}` },
    spec: {
      group: Group,
      names: { kind: Kind, listKind: `${Kind}List`, plural: Plural, singular: Singular, shortNames: [ShortName], categories: ['all', 'ocisource'] },
      scope: 'Namespaced',
      versions: [
        {
          name: Version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PrinterColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'OCIRepository is a source of OCI artifacts that are verified before they are served.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toOpenAPI(OCIRepositorySpec),
                status: { ...(toOpenAPI(OCIRepositoryStatus) as object), default: { observedGeneration: -1 } },
              },
            },
          },
        },
      ],
    },
  };
}
