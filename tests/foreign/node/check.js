'use strict';
// A tiny result recorder: check(section, vector, label, ok, detail)
const results = [];
function check(section, vector, label, ok, detail) {
  results.push({ section, vector, label, ok: !!ok, detail });
  if (!ok && process.env.VERBOSE !== '0') console.log(`FAIL ${section}.${vector} ${label}` + (detail ? `: ${detail}` : ''));
}
function skip(section, vector, label, why) { results.push({ section, vector, label, ok: null, detail: why }); }
function eq(section, vector, label, got, want) {
  const g = JSON.stringify(got, (k, v) => typeof v === 'bigint' ? v.toString() : v);
  const w = JSON.stringify(want, (k, v) => typeof v === 'bigint' ? v.toString() : v);
  check(section, vector, label, g === w, g === w ? '' : `got ${g.slice(0, 400)} want ${w.slice(0, 400)}`);
}
// run fn, record a refusal check: expect it to throw
function refuses(section, vector, label, fn) {
  let threw = null; try { fn(); } catch (e) { threw = e.message; }
  check(section, vector, label, threw !== null, threw === null ? 'was accepted' : '');
  return threw;
}
module.exports = { results, check, skip, eq, refuses };
