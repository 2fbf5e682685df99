// Starts oauth2-mock-server on a loopback port for roost's tests and prints
// `ready <oauth-port> <stats-port>` on stdout.
//
// The server is the real package (authorization endpoint, token endpoint
// with PKCE S256 verification, refresh grants). Its documented
// `beforeResponse` hook shapes a few provider behaviours the tests need:
//   - clients whose id contains `revoking` have every refresh refused with
//     `invalid_grant` (as after a user revoked access);
//   - clients whose id contains `keep` get no new refresh token on refresh;
//   - clients whose id starts with `slack` get Slack's response shapes
//     (`ok`, `authed_user`, HTTP 200 with `ok: false` on errors).
// GET /stats on the second port reports how many refresh grants arrived.
'use strict';

const http = require('node:http');
const { OAuth2Server } = require('oauth2-mock-server');

function clientId(req) {
  const header = req.headers.authorization || '';
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return decodeURIComponent(decoded.split(':')[0]);
  }
  return req.body.client_id;
}

async function main() {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  const stats = { refreshes: 0, codes: 0 };

  // Real providers issue a distinct token every time. The mock's JWTs
  // differ only by their issue second, so a refresh within the same second
  // would hand back the very token it replaces; a unique id prevents that.
  server.service.on('beforeTokenSigning', (token) => {
    token.payload.jti = require('node:crypto').randomUUID();
  });

  server.service.on('beforeResponse', (response, req) => {
    const grant = req.body.grant_type;
    const client = String(clientId(req) || '');
    const slack = client.startsWith('slack');
    if (grant === 'authorization_code') stats.codes += 1;
    if (grant === 'refresh_token') {
      stats.refreshes += 1;
      if (client.includes('revoking')) {
        if (slack) {
          response.statusCode = 200;
          response.body = { ok: false, error: 'invalid_refresh_token' };
        } else {
          response.statusCode = 400;
          response.body = { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' };
        }
        return;
      }
      if (client.includes('keep')) delete response.body.refresh_token;
    }
    if (slack && response.statusCode === 200) {
      const body = response.body;
      response.body = {
        ok: true,
        app_id: 'A0TEST',
        authed_user: { id: 'U0TEST' },
        scope: 'chat:write,channels:read',
        token_type: 'bot',
        access_token: `xoxb-${body.access_token.slice(0, 24)}`,
        bot_user_id: 'U0BOT',
        refresh_token: body.refresh_token ? `xoxe-1-${body.refresh_token}` : undefined,
        expires_in: 43200,
        team: { id: 'T0TEST', name: 'roost tests' },
      };
    }
  });

  await server.start(0, '127.0.0.1');
  const statsServer = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
  });
  await new Promise((resolve) => statsServer.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`ready ${server.address().port} ${statsServer.address().port}\n`);
  // Stop when the test process goes away (stdin closes).
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
