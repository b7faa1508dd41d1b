// Node's google-auth-library (and gcp-metadata under it) against `gemauth metadata-server`: run by
// hand with the server's fake source (see README.md). Needs `npm install google-auth-library` in
// the directory it is run from (or NODE_PATH), GCE_METADATA_HOST naming the server,
// GOOGLE_APPLICATION_CREDENTIALS unset and CLOUDSDK_CONFIG an empty directory.
import {GoogleAuth, Compute} from 'google-auth-library';
import * as gcpMetadata from 'gcp-metadata';

// The by-hand run's fake source by default; tests/it/metadata_server.rs sets these.
const EMAIL = process.env.EXPECT_EMAIL || 'robot@my-project.iam.gserviceaccount.com';
const PROJECT = process.env.EXPECT_PROJECT || 'interop-project';
const TOKEN_PREFIX = process.env.EXPECT_TOKEN_PREFIX || 'ya29.token-';
const AUDIENCE = 'https://service.example.run.app';

function check(condition, what) {
  console.log((condition ? 'ok   ' : 'FAIL ') + what);
  if (!condition) process.exit(1);
}

if (process.env.GOOGLE_APPLICATION_CREDENTIALS) {
  console.error('unset GOOGLE_APPLICATION_CREDENTIALS first');
  process.exit(2);
}

check(await gcpMetadata.isAvailable(), 'gcp-metadata isAvailable (instance, via the 301)');
const auth = new GoogleAuth({scopes: ['https://www.googleapis.com/auth/cloud-platform']});
const client = await auth.getClient();
check(client instanceof Compute, 'GoogleAuth picks Compute credentials: ' + client.constructor.name);
const {token} = await client.getAccessToken();
check(typeof token === 'string' && token.startsWith(TOKEN_PREFIX), 'access token: ' + token);
check((await auth.getProjectId()) === PROJECT, 'project id');
const creds = await auth.getCredentials();
check(creds.client_email === EMAIL, 'client_email: ' + creds.client_email);
const idClient = await auth.getIdTokenClient(AUDIENCE);
const headers = await idClient.getRequestHeaders();
const authorization = headers.get ? headers.get('authorization') : headers.Authorization;
const claims = JSON.parse(Buffer.from(authorization.split(' ')[1].split('.')[1], 'base64url'));
check(claims.aud === AUDIENCE, 'ID token aud: ' + claims.aud);
console.log('token=' + token);
console.log('all checks passed');
