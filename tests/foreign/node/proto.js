'use strict';
// Minimal protobuf (proto3) wire decoder/encoder, schema-driven, for the fedseed.v1 messages we need.
function readVarint(b, p) {
  let x = 0n, s = 0n;
  for (;;) { if (p.i >= b.length) throw new Error('truncated varint'); const c = b[p.i++]; x |= BigInt(c & 0x7f) << s; s += 7n; if (!(c & 0x80)) break; if (s > 63n) { if (s >= 70n) throw new Error('varint too long'); } }
  return x & ((1n << 64n) - 1n);
}
// raw: list of {no, wt, val} ; val: BigInt for varint/fixed, Buffer for len
function rawFields(b) {
  const p = { i: 0 }, out = [];
  while (p.i < b.length) {
    const key = readVarint(b, p), no = Number(key >> 3n), wt = Number(key & 7n);
    if (no === 0) throw new Error('field number 0');
    let val;
    if (wt === 0) val = readVarint(b, p);
    else if (wt === 1) { if (p.i + 8 > b.length) throw new Error('truncated fixed64'); val = b.subarray(p.i, p.i + 8); p.i += 8; }
    else if (wt === 5) { if (p.i + 4 > b.length) throw new Error('truncated fixed32'); val = b.subarray(p.i, p.i + 4); p.i += 4; }
    else if (wt === 2) { const n = Number(readVarint(b, p)); if (p.i + n > b.length) throw new Error('truncated length-delimited'); val = b.subarray(p.i, p.i + n); p.i += n; }
    else throw new Error('unsupported wire type ' + wt);
    out.push({ no, wt, val });
  }
  return out;
}
// Schemas from protos/fedseed/v1/coordinator.proto (only what we use)
const S = {
  RequestAuth: { 1: ['client_id', 'string'], 2: ['nonce', 'uint64'], 3: ['timestamp_ms', 'int64'], 4: ['signature', 'bytes'], 5: ['run_id', 'string'], 6: ['coordinator', 'string'] },
  LayoutFingerprint: { 1: ['spec_version', 'string'], 2: ['fingerprint', 'string'] },
  JoinRequest: { 1: ['auth', 'RequestAuth'], 2: ['layout', 'LayoutFingerprint'], 3: ['codecs', 'string', 'rep'], 4: ['direction_kinds', 'string', 'rep'], 5: ['software', 'string'] },
  FetchTaskRequest: { 1: ['auth', 'RequestAuth'], 2: ['applied_round', 'uint32'], 3: ['wait_ms', 'uint32'], 4: ['state_checksum', 'bytes'], 5: ['held_round', 'uint32'] },
  UpdateRequest: { 1: ['auth', 'RequestAuth'], 2: ['round', 'uint32'], 3: ['payload', 'bytes'], 4: ['num_samples', 'uint64'], 5: ['start_checksum', 'bytes'], 6: ['train_loss', 'float'], 7: ['skipped_steps', 'uint32'] },
  RelayedResult: { 1: ['client', 'uint32'], 2: ['num_samples', 'uint64'], 3: ['payload', 'bytes'] },
  GlobalUpdate: { 1: ['round', 'uint32'], 2: ['kind', 'string'], 3: ['seeds', 'uint64', 'rep'], 4: ['coefs', 'bytes'], 5: ['starts', 'uint64', 'rep'], 6: ['stops', 'uint64', 'rep'], 7: ['pool_indices', 'uint32', 'rep'], 8: ['checksum', 'bytes'], 9: ['merged', 'bool'], 10: ['first_round', 'uint32'], 11: ['lr', 'double'], 12: ['results', 'RelayedResult', 'rep'], 13: ['own_result_omitted', 'bool'] },
};
const WT = { string: 2, bytes: 2, uint64: 0, int64: 0, uint32: 0, bool: 0, double: 1, float: 5 };
function scalar(type, f) {
  switch (type) {
    case 'string': { if (f.wt !== 2) throw new Error('wire type'); const s = f.val.toString('utf8'); if (Buffer.from(s, 'utf8').compare(f.val) !== 0) throw new Error('invalid UTF-8'); return s; }
    case 'bytes': if (f.wt !== 2) throw new Error('wire type'); return Buffer.from(f.val);
    case 'uint64': return f.val;
    case 'int64': return BigInt.asIntN(64, f.val);
    case 'uint32': return Number(f.val & 0xFFFFFFFFn);
    case 'bool': return f.val !== 0n;
    case 'double': if (f.wt !== 1) throw new Error('wire type'); return f.val.readDoubleLE(0);
    case 'float': if (f.wt !== 5) throw new Error('wire type'); return f.val.readFloatLE(0);
  }
  throw new Error('type ' + type);
}
function decode(msg, b) {
  const sch = S[msg], out = { _unknown: [] };
  for (const [no, [name, type, rep]] of Object.entries(sch)) out[name] = rep ? [] : (S[type] ? null : type === 'string' ? '' : type === 'bytes' ? Buffer.alloc(0) : type === 'bool' ? false : (type === 'double' || type === 'float') ? 0 : (type === 'uint32' ? 0 : 0n));
  for (const f of rawFields(b)) {
    const d = sch[f.no]; if (!d) { out._unknown.push(f.no); continue; }
    const [name, type, rep] = d;
    if (S[type]) { if (f.wt !== 2) throw new Error('wire type'); const m = decode(type, f.val); if (rep) out[name].push(m); else out[name] = m; continue; }
    if (rep && f.wt === 2 && WT[type] !== 2) { // packed
      const p = { i: 0 }; while (p.i < f.val.length) out[name].push(scalar(type, { wt: 0, val: readVarint(f.val, p) }));
      continue;
    }
    if (f.wt !== WT[type]) throw new Error(`field ${name}: wire type ${f.wt}`);
    const v = scalar(type, f); if (rep) out[name].push(v); else out[name] = v;
  }
  return out;
}
// encoder: canonical (ascending field numbers, defaults omitted, repeated scalars packed)
function varint(x) { x = BigInt.asUintN(64, BigInt(x)); const o = []; do { let c = Number(x & 0x7fn); x >>= 7n; if (x) c |= 0x80; o.push(c); } while (x); return Buffer.from(o); }
function encode(msg, obj) {
  const sch = S[msg], parts = [];
  for (const no of Object.keys(sch).map(Number).sort((a, b) => a - b)) {
    const [name, type, rep] = sch[no]; const v = obj[name];
    if (v === undefined || v === null) continue;
    const key = (wt) => varint((BigInt(no) << 3n) | BigInt(wt));
    const one = (x) => {
      if (S[type]) { const e = encode(type, x); return Buffer.concat([key(2), varint(e.length), e]); }
      if (type === 'string' || type === 'bytes') { const e = Buffer.from(x); return Buffer.concat([key(2), varint(e.length), e]); }
      if (type === 'double') { const e = Buffer.alloc(8); e.writeDoubleLE(x); return Buffer.concat([key(1), e]); }
      if (type === 'float') { const e = Buffer.alloc(4); e.writeFloatLE(x); return Buffer.concat([key(5), e]); }
      return Buffer.concat([key(0), varint(type === 'bool' ? (x ? 1 : 0) : x)]);
    };
    if (rep) {
      if (!v.length) continue;
      if (S[type] || type === 'string' || type === 'bytes') for (const x of v) parts.push(one(x));
      else { const e = Buffer.concat(v.map(x => varint(x))); parts.push(Buffer.concat([key(2), varint(e.length), e])); }
    } else {
      const isDefault = (type === 'string' || type === 'bytes') ? v.length === 0 : type === 'bool' ? !v : (typeof v === 'bigint' ? v === 0n : (v === 0 && !Object.is(v, -0)));
      if (!S[type] && isDefault) continue;
      parts.push(one(v));
    }
  }
  return Buffer.concat(parts);
}
module.exports = { rawFields, decode, encode };
