// undici, loaded on the first registry or cloud request rather than at start, and only the parts we
// use: the Agent and ProxyAgent dispatchers and the request API. Its index also loads fetch,
// WebSocket, EventSource, the mock agents and the cache stores, some 80 more modules: about 90 ms
// of a CLI's start-up and several MB of RSS that a controller never uses.
import type { Agent, Dispatcher, ProxyAgent } from 'undici';

export interface Undici {
  Agent: typeof Agent;
  ProxyAgent: typeof ProxyAgent;
  /** undici's `request(url, options)`, always on the dispatcher given. */
  request(url: string | URL, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher }): Promise<Dispatcher.ResponseData>;
}

let loaded: Promise<Undici> | undefined;

export function undici(): Promise<Undici> {
  return (loaded ??= load());
}

async function load(): Promise<Undici> {
  const [agent, proxyAgent, dispatcher, api] = await Promise.all([
    import('undici/lib/dispatcher/agent.js'),
    import('undici/lib/dispatcher/proxy-agent.js'),
    import('undici/lib/dispatcher/dispatcher.js'),
    import('undici/lib/api/index.js'),
  ]);
  // What undici's index does: every dispatcher gets request, stream, connect… (ProxyAgent tunnels
  // with its client's `connect`).
  Object.assign(dispatcher.default.prototype, api.default);
  return {
    Agent: agent.default,
    ProxyAgent: proxyAgent.default,
    request(url, { dispatcher: d, ...options }) {
      const u = typeof url === 'string' ? new URL(url) : url;
      return d.request({ ...options, origin: u.origin, path: `${u.pathname}${u.search}` });
    },
  };
}
