/**
 * The bench's peak probes run on every ISA this CPU has, each in a fresh process, so a fault in one
 * (an illegal instruction, a bad tile configuration) fails its case with the signal instead of
 * killing the test worker. Paths the CPU lacks answer with a coded error.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { addonPath, native } from '../../src/native/index.js';

const info = native.cpuInfo();
const amx = info.features.amxInt8 && info.features.amxPermitted;
const PROBES = [
  { fn: '_peakFma', isa: 'avx2', here: info.features.avx2Fma },
  { fn: '_peakFma', isa: 'avx512', here: info.features.avx512 },
  { fn: '_peakFma', isa: 'avx512bf16', here: info.features.avx512 && info.features.avx512Vnni && info.features.avx512Bf16 },
  { fn: '_peakFma', isa: 'amx-bf16', here: amx },
  { fn: '_peakInt8', isa: 'avx512vnni', here: info.features.avx512 && info.features.avx512Vnni },
  { fn: '_peakInt8', isa: 'amx', here: amx },
] as const;

/** Runs one probe in a child process on `threads` threads; returns its { work, seconds }. */
function probeInChild(fn: string, isa: string, threads: number): { work: number; seconds: number } {
  const script = `const a = require(${JSON.stringify(addonPath())});
const r = a.${fn}(${JSON.stringify(isa)}, 2000, ${threads});
console.log(JSON.stringify({ work: r.flops ?? r.ops, seconds: r.seconds }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { work: number; seconds: number };
}

describe('peak probes', () => {
  for (const p of PROBES) {
    it.skipIf(!p.here)(`${p.fn}('${p.isa}') runs on one and two threads${p.here ? '' : ' (skipped: not on this CPU)'}`, () => {
      for (const threads of [1, 2]) {
        const r = probeInChild(p.fn, p.isa, threads);
        expect(r.work).toBeGreaterThan(0);
        expect(r.seconds).toBeGreaterThan(0);
      }
    });
    if (!p.here) {
      it(`${p.fn}('${p.isa}') is refused with a coded error where the CPU lacks it`, () => {
        const call = (native as unknown as Record<string, (isa: string, n: number, t: number) => unknown>)[p.fn]!;
        expect(() => call(p.isa, 10, 1)).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ISA_UNSUPPORTED' }) as Error);
      });
    }
  }
});
