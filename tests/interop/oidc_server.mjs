// An OpenID-certified authorization server (panva/oidc-provider) configured like Google for a
// Desktop OAuth client: a native client with loopback redirect URIs on any port, PKCE required,
// client_secret_post, a refresh token issued on every code exchange (Google's
// access_type=offline), revocation and introspection enabled, Google-style scope names.
//
// usage: node oidc_server.mjs [--rotate]
// Prints one JSON line on stdout once listening: {"issuer": ..., "port": ...}. Exits when its
// standard input closes (the test that started it ended).
import { Provider } from 'oidc-provider';
import http from 'node:http';

const rotate = process.argv.includes('--rotate');
const GOOGLE = 'https://www.googleapis.com/auth/';
const resourceScopes = [`${GOOGLE}cloud-platform`, `${GOOGLE}generative-language.retriever`];

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'gemauth-interop.apps.googleusercontent.com',
    client_secret: 'GOCSPX-interop-secret',
    application_type: 'native',
    // RFC 8252 7.3: for native clients a loopback redirect URI matches on any port.
    redirect_uris: ['http://127.0.0.1/'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  pkce: { required: () => true, methods: ['S256'] },
  cookies: { keys: ['gemauth-interop-test-cookie-key'] },
  scopes: ['openid', 'email', 'offline_access', `${GOOGLE}userinfo.email`],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    [`${GOOGLE}userinfo.email`]: ['email', 'email_verified'],
  },
  // Like Google, put the email in the ID token.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.com`, email_verified: true };
      },
    };
  },
  // Google issues a refresh token on every code exchange with access_type=offline.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  rotateRefreshToken: rotate,
  ttl: { AccessToken: 3600 },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'https://www.googleapis.com/',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: resourceScopes.join(' '),
        accessTokenFormat: 'opaque',
        accessTokenTTL: 3600,
      }),
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());
console.log(JSON.stringify({ issuer, port }));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
