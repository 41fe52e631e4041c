// Integration-test harness: real etcd + kube-apiserver, real docker-registry (plain, TLS,
// htpasswd, token auth), a test-only OCI pusher, openssl-made PKI, a dockerd of our own, and
// process/temp-dir hygiene.
export * from './ports.ts';
export * from './proc.ts';
export * from './pki.ts';
export * from './token-issuer.ts';
export * from './registry.ts';
export * from './push.ts';
export * from './kube.ts';
export * from './referrers-proxy.ts';
export * from './docker.ts';
