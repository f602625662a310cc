'use strict';
// Checks of claims the spec text makes beyond its vectors.
const J = require(require('path').join(__dirname, '..', '..', '..', 'docs', 'spec', 'conformance.json'));
const R = require('./rng.js'); const T = require('./state.js'); const U = require('./util.js');
const { check } = require('./check.js');
const S = 'extra';
// 1. Gaussian table from its stated formula: round_half_even(256 * AS241((u+0.5)/65536))
function as241(p) { // Wichura AS241 PPND16, as CPython statistics.NormalDist.inv_cdf (mu=0, sigma=1)
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    const num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q;
    const den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r + 4.2313330701600911252e+1) * r + 1.0);
    return num / den;
  }
  let r = q <= 0 ? p : 1.0 - p; r = Math.sqrt(-Math.log(r)); let x;
  if (r <= 5.0) {
    r = r - 1.6;
    const num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0);
    const den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r + 2.05319162663775882187e+0) * r + 1.0);
    x = num / den;
  } else {
    r = r - 5.0;
    const num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0);
    const den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r + 5.99832206555887937690e-1) * r + 1.0);
    x = num / den;
  }
  return q < 0.0 ? -x : x;
}
{
  const G = R.gaussianTable(J.randomness.gaussian_table.runs); const diff = [];
  for (let u = 0; u < 65536; u++) { const g = U.rne(256 * as241((u + 0.5) / 65536)); if (g !== G[u]) diff.push(u); }
  check(S, 'gaussian_formula', 'table = RNE(256*AS241((u+0.5)/65536)) in JS (V8 log/sqrt)', diff.length === 0, diff.length + ' entries differ: ' + diff.slice(0, 8));
}
// 2. state.md §6: two roundings equal one: RHA(RNE(coef*2^56) * 2^(s-56)) == RHA(coef*2^s) for float32 coefs
{
  let bad = 0; const b = Buffer.alloc(4);
  const rha = (x) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
  for (let n = 0; n < 100000; n++) {
    let c; do { b.writeUInt32LE((Math.random() * 2 ** 32) >>> 0); c = b.readFloatLE(0); } while (!Number.isFinite(c) || Math.abs(c) > 1);
    const ci = T.coefToInt(c, 'rademacher');
    for (const s of [-3, 0, 10, 27, 28, 30]) if (T.roundCoef(ci, s) !== BigInt(rha(c * 2 ** s))) bad++;
  }
  check(S, 'round_coef_claim', '100k random float32: c_s = RHA(coef*2^s)', bad === 0, bad + ' mismatches');
}
