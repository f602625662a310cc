'use strict';
const V = require(require('path').join(__dirname, '..', '..', '..', 'docs', 'spec', 'conformance.json')).signing;
const crypto = require('crypto');
const P = require('./proto.js');
const { hex, unhex, sha256 } = require('./util.js');
const { check, eq } = require('./check.js');
const S = 'signing';

const DOMAIN = Buffer.from('fedseed.v1\0', 'ascii');
eq(S, 'domain', 'bytes', hex(DOMAIN), V.domain);
eq(S, 'metadata_key', 'name', 'fedseed-signature-bin', V.metadata_key);
const seed = unhex(V.key.private_seed);
const der = Buffer.concat([unhex('302e020100300506032b657004220420'), seed]);
const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
eq(S, 'key', 'public key from seed', hex(pub), V.key.public_key);
const pemDer = Buffer.from(V.key.pkcs8_pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
eq(S, 'key', 'PEM is PKCS#8 of the seed', hex(pemDer), hex(der));
const pub2 = crypto.createPublicKey(crypto.createPrivateKey(V.key.pkcs8_pem)).export({ format: 'der', type: 'spki' }).subarray(-32);
eq(S, 'key', 'public key from PEM', hex(pub2), V.key.public_key);

const msgOf = { Join: 'JoinRequest', FetchTask: 'FetchTaskRequest', SubmitUpdate: 'UpdateRequest' };
function signingBytes(method, body) { return Buffer.concat([DOMAIN, Buffer.from(method, 'ascii'), Buffer.from([0]), sha256(body)]); }
const decoded = {};
for (const name of ['hello_join', 'fetch_task_defaults_written', 'submit_update']) {
  const v = V[name], body = unhex(v.inputs.body), method = v.inputs.method;
  const sb = signingBytes(method, body);
  eq(S, name, 'signing bytes', hex(sb), v.expected.signing_bytes);
  const sig = crypto.sign(null, sb, priv);
  eq(S, name, 'signature', hex(sig), v.expected.signature);
  check(S, name, 'signature verifies with public key', crypto.verify(null, sb, crypto.createPublicKey(priv), unhex(v.expected.signature)));
  let m = null, err = null;
  try { m = P.decode(msgOf[method], body); } catch (e) { err = e.message; }
  check(S, name, `body parses as ${msgOf[method]}`, m && m._unknown.length === 0 && m.auth, err || (m && m._unknown.length ? 'unknown fields ' + m._unknown : ''));
  if (m) check(S, name, 'RequestAuth.signature empty', m.auth && m.auth.signature.length === 0);
  decoded[name] = m;
}
{ // content checks on what the spec says each carries
  const j = decoded.hello_join;
  check(S, 'hello_join', 'hello: empty layout, empty run_id/coordinator', j && j.layout === null && j.auth.run_id === '' && j.auth.coordinator === '',
    j && JSON.stringify({ layout: j.layout, run: j.auth.run_id, coord: j.auth.coordinator }));
  const f = decoded.fetch_task_defaults_written;
  check(S, 'fetch_task_defaults_written', 'bound to a run and coordinator', f && f.auth.run_id.length > 0 && f.auth.coordinator.length > 0);
  // raw field order: defaults written and fields out of order
  const raw = P.rawFields(unhex(V.fetch_task_defaults_written.inputs.body)).map(x => x.no);
  check(S, 'fetch_task_defaults_written', 'fields out of order / defaults written (as the name says)', raw.join(',') !== [...raw].sort((a, b) => a - b).join(','), 'order ' + raw);
  const u = decoded.submit_update;
  check(S, 'submit_update', '16-byte start checksum, fp32 payload', u && u.start_checksum.length === 16 && u.payload.length % 4 === 0);
  module.exports.decoded = decoded;
}
