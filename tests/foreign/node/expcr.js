'use strict';
// Correctly rounded e^x for a binary64 x (BigInt fixed point; slow, used only for K values per round).
function toExact(x) { // x = M * 2^E exactly
  const b = Buffer.alloc(8); b.writeDoubleBE(x);
  const hi = b.readUInt32BE(0), lo = b.readUInt32BE(4); const ex = (hi >>> 20) & 0x7ff;
  let M = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo); let E;
  if (ex === 0) E = -1074; else { M |= 1n << 52n; E = ex - 1075; }
  return { neg: (hi >>> 31) === 1, M, E };
}
function expCR(x) {
  if (x === 0) return 1;
  if (!Number.isFinite(x)) return x > 0 ? Infinity : (Number.isNaN(x) ? NaN : 0);
  if (x > 709.8) return Infinity; if (x < -745.2) return 0;
  const { neg, M, E } = toExact(x);
  const F = 1200n, ONE = 1n << F;
  if (BigInt(E) + F < 0n) return 1; // |x| < 2^-1200: rounds to 1
  const X = M << (BigInt(E) + F); // |x| * 2^F
  let term = ONE, sum = ONE;
  for (let i = 1n; ; i++) { term = (term * X) / ONE / i; if (term === 0n) break; sum += term; }
  // value = sum / 2^F (or 2^F / sum): produce num/den and round to double
  let num, den; if (neg) { num = ONE; den = sum; } else { num = sum; den = ONE; }
  // scale so q has 53 bits: find k with 2^52 <= num*2^k/den < 2^53
  let k = 52 - (num.toString(2).length - den.toString(2).length);
  const q0 = (k >= 0) ? (num << BigInt(k)) / den : num / (den << BigInt(-k));
  if (q0 >= (1n << 53n)) k -= 1; else if (q0 < (1n << 52n)) k += 1;
  const N = k >= 0 ? num << BigInt(k) : num, D = k >= 0 ? den : den << BigInt(-k);
  let q = N / D; const r = N - q * D;
  if (2n * r > D || (2n * r === D && (q & 1n))) q += 1n;
  return Number(q) * Math.pow(2, -k); // subnormal results not handled (not needed: e^x >= e^-745)
}
module.exports = { expCR };
if (require.main === module) {
  let bad = 0; for (let i = 0; i < 2000; i++) { const x = (Math.random() - 0.5) * 40; const a = expCR(x), b = Math.exp(x); if (Math.abs(a - b) > Math.abs(a) * 3e-16) bad++; }
  console.log('mismatch beyond 1ulp:', bad, expCR(1) === Math.E, expCR(-1));
}
