'use strict';
// A participant written in Node.js from docs/spec/ and docs/protocol.md alone, checked against every vector of
// docs/spec/conformance.json:  node tests/foreign/node/run.js [section]   (VERBOSE=0 hides single failures)
const { results } = require('./check.js');
const only = process.argv.slice(2);
for (const s of ['randomness', 'signing', 'state', 'aggregation', 'extra']) {
  if (only.length && !only.includes(s)) continue;
  try { require('./t_' + s + '.js'); } catch (e) { if (e.code === 'MODULE_NOT_FOUND' && e.message.includes('t_' + s)) continue; throw e; }
}
const tab = {};
for (const r of results) {
  const k = r.section + '.' + r.vector; tab[k] = tab[k] || { pass: 0, fail: 0, skip: 0 };
  tab[k][r.ok === null ? 'skip' : r.ok ? 'pass' : 'fail']++;
}
console.log('\n' + 'vector'.padEnd(52) + 'pass  fail  not-impl');
let P = 0, F = 0, K = 0;
for (const [k, v] of Object.entries(tab)) { console.log(k.padEnd(52) + String(v.pass).padStart(4) + String(v.fail).padStart(6) + String(v.skip).padStart(10)); P += v.pass; F += v.fail; K += v.skip; }
console.log('total'.padEnd(52) + String(P).padStart(4) + String(F).padStart(6) + String(K).padStart(10));
for (const r of results) if (r.ok === null) console.log(`not implemented: ${r.section}.${r.vector} ${r.label}: ${r.detail}`);
const hard = results.filter(r => r.ok === false && !r.vector.includes('informational')).length;
console.log(hard ? `${hard} conformance failure(s)` : 'all conformance checks pass (informational rows excluded)');
process.exitCode = hard ? 1 : 0;
