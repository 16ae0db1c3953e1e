// The peer of the PSC simulator in benchmarks/bench_psc.py: node `oidc-provider` 9 (npm, panva) configured like
// the simulator's realm for the token endpoint. bench_psc.py installs oidc-provider in a temporary folder, copies
// this script there and runs:  node oidc_provider_server.mjs <port> <server-key.pem> <server-chain.pem> <ready-file>
//
// Equivalent configuration: HTTPS with the same test-PKI server certificate; the client `dui-reference`,
// client_secret_basic, redirect URI exact, PKCE S256 required; scopes `openid scope_all`; access token a JWT
// signed RS256 (resource indicator, `jwt` format) carrying PSC-like claims, id token RS256; refresh tokens issued
// and rotated on every use; lifetimes access 300 s, id 300 s, refresh 1800 s. Storage: the provider's default
// in-memory adapter (no journal: the simulator commits a journal row before each answer, oidc-provider does not).
// Interaction: a fixed professional logs in and consents at once (the code acquisition is not timed).
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, keyPath, certPath, readyPath] = process.argv.slice(2);
const RESOURCE = 'https://psc.bench.test/api';
const ACCOUNT = '810002909371';
const jwk = (options) => generateKeyPairSync(...options).privateKey.export({ format: 'jwk' });

const server = https.createServer({ key: readFileSync(keyPath), cert: readFileSync(certPath) });
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1', () => {
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'dui-reference',
      client_secret: 'dui-reference-secret-essai',
      redirect_uris: ['https://dui-reference.test/psc/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: {
      keys: [
        { ...jwk(['rsa', { modulusLength: 2048 }]), alg: 'RS256', use: 'sig', kid: 'rs256' },
        { ...jwk(['ec', { namedCurve: 'P-256' }]), alg: 'ES256', use: 'sig', kid: 'es256' },
      ],
    },
    scopes: ['openid', 'scope_all'],
    claims: { openid: ['sub'], scope_all: ['preferred_username', 'given_name', 'family_name'] },
    cookies: { keys: ['bench-psc-cookie-key-not-secret'] },
    pkce: { required: () => true },
    ttl: { AccessToken: 300, IdToken: 300, RefreshToken: 1800, AuthorizationCode: 600, Grant: 3600, Session: 3600, Interaction: 600 },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: 'scope_all',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    // The PSC access token's own claims (preferred_username = idNat_PS, otherIds, acr), as the simulator signs.
    extraTokenClaims: async () => ({
      typ: 'Bearer',
      acr: 'eidas1',
      preferred_username: ACCOUNT,
      otherIds: [{ identifiant: ACCOUNT, origine: 'RPPS', qualite: 1 }],
    }),
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, preferred_username: ACCOUNT, given_name: 'Claire', family_name: 'DURAND' }),
    }),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  // Login + consent at once for the fixed professional: the untimed code acquisition is three redirects.
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = new provider.Grant({ accountId: ACCOUNT, clientId: details.params.client_id });
    grant.addOIDCScope('openid scope_all');
    grant.addResourceScope(RESOURCE, 'scope_all');
    const grantId = await grant.save();
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, {
      login: { accountId: ACCOUNT, acr: 'eidas1' },
      consent: { grantId },
    }, { mergeWithLastSubmission: false }));
    ctx.status = 303;
  });
  server.on('request', provider.callback());
  writeFileSync(readyPath, JSON.stringify({ issuer, token: `${issuer}/token`, authorize: `${issuer}/auth` }));
});
