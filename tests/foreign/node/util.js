'use strict';
// Hex, float-bit and integer helpers; BLAKE2b (any digest length), written from RFC 7693.
const crypto = require('crypto');
const M64 = (1n << 64n) - 1n, M32 = 0xFFFFFFFF;

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => Buffer.from(h, 'hex');
function f64FromHex(h) { const b = Buffer.from(h, 'hex'); return b.readDoubleBE(0); }
function f64ToHex(x) { const b = Buffer.alloc(8); b.writeDoubleBE(x); return b.toString('hex'); }
function f32FromHex(h) { const b = Buffer.from(h, 'hex'); return b.readFloatBE(0); }
function f32ToHex(x) { const b = Buffer.alloc(4); b.writeFloatBE(x); return b.toString('hex'); }
const f32 = Math.fround;

// round half to even of a double (exact: x - floor(x) is exact in binary64)
function rne(x) {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return (f % 2 === 0) ? f : f + 1;
}
// BigInt -> nearest binary32 (ties to even), directly (one rounding)
function bigToF32(d) {
  if (d === 0n) return 0;
  const neg = d < 0n; let a = neg ? -d : d;
  const n = a.toString(2).length;
  let v;
  if (n <= 24) v = Number(a);
  else {
    const sh = BigInt(n - 24); let q = a >> sh; const rem = a & ((1n << sh) - 1n); const half = 1n << (sh - 1n);
    if (rem > half || (rem === half && (q & 1n))) q += 1n;
    v = Number(q) * Math.pow(2, Number(sh));
  }
  return f32(neg ? -v : v);
}
function u64(x) { return BigInt.asUintN(64, BigInt(x)); }

// ---------------- BLAKE2b (RFC 7693) with BigInt words ----------------
const IV = [0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n];
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4], [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13], [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11], [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5], [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]];
const rotr = (x, n) => ((x >> n) | (x << (64n - n))) & M64;
function compress(h, block, t, last) {
  const m = new Array(16); for (let i = 0; i < 16; i++) m[i] = block.readBigUInt64LE(8 * i);
  const v = h.concat(IV); v[12] ^= t & M64; v[13] ^= (t >> 64n) & M64; if (last) v[14] ^= M64;
  const G = (a, b, c, d, x, y) => {
    v[a] = (v[a] + v[b] + x) & M64; v[d] = rotr(v[d] ^ v[a], 32n);
    v[c] = (v[c] + v[d]) & M64; v[b] = rotr(v[b] ^ v[c], 24n);
    v[a] = (v[a] + v[b] + y) & M64; v[d] = rotr(v[d] ^ v[a], 16n);
    v[c] = (v[c] + v[d]) & M64; v[b] = rotr(v[b] ^ v[c], 63n);
  };
  for (let r = 0; r < 12; r++) {
    const s = SIGMA[r % 10];
    G(0, 4, 8, 12, m[s[0]], m[s[1]]); G(1, 5, 9, 13, m[s[2]], m[s[3]]); G(2, 6, 10, 14, m[s[4]], m[s[5]]); G(3, 7, 11, 15, m[s[6]], m[s[7]]);
    G(0, 5, 10, 15, m[s[8]], m[s[9]]); G(1, 6, 11, 12, m[s[10]], m[s[11]]); G(2, 7, 8, 13, m[s[12]], m[s[13]]); G(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}
function blake2b(data, outlen = 16) {
  data = Buffer.from(data);
  const h = IV.slice(); h[0] ^= 0x01010000n ^ BigInt(outlen);
  let t = 0n, off = 0;
  while (data.length - off > 128) { t += 128n; compress(h, data.subarray(off, off + 128), t, false); off += 128; }
  const last = Buffer.alloc(128); data.copy(last, 0, off); t += BigInt(data.length - off); compress(h, last, t, true);
  const out = Buffer.alloc(64); for (let i = 0; i < 8; i++) out.writeBigUInt64LE(h[i], 8 * i);
  return out.subarray(0, outlen);
}
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();

module.exports = { M64, M32, hex, unhex, f64FromHex, f64ToHex, f32FromHex, f32ToHex, f32, rne, bigToF32, u64, blake2b, sha256 };
