/**
 * predict's pooled outputs: a large output freed by the collector comes back for the next call of
 * its size (checked in a child process with --expose-gc), as does one given back by dispose (its
 * buffer detached at once, and the collector's later finalizer unable to give the memory back a
 * second time while another output holds it); small ones are ordinary arrays, and a model's
 * predictions are the same through the pool as through a caller's buffer.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { addonPath, native } from '../../src/native/index.js';
import { dense, initializers, sequential } from '../../src/index.js';
import { openPackedModel } from '../../src/model/packed.js';

describe('output pool', () => {
  it('reuses a collected large buffer, and releaseFreeMemory empties the pool', () => {
    // Up to 50 turns of the event loop (no clock): each drops a marked buffer, collects, and asks
    // for one of about its size; a pooled buffer comes back still marked.
    const script = `
      const a = require(${JSON.stringify(addonPath())});
      const floats = 1 << 20;
      let turns = 0, reused = false;
      const turn = () => {
        const y = a.allocOutput(floats - 1000 * turns);
        reused = y[0] === 12345;
        if (reused || ++turns === 50) {
          const sizes = [y.length, a.allocOutput(4).length, a.allocOutput(1 << 22).length];
          console.log(JSON.stringify({ reused, pooledFrom: a.pooledOutputMinFloats, sizes, released: typeof a.releaseFreeMemory() }));
          return;
        }
        y[0] = 12345;
        gc();
        setImmediate(turn); // the buffer's finalizer runs from the event loop
      };
      turn();`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' })) as {
      reused: boolean;
      pooledFrom: number;
      sizes: number[];
      released: string;
    };
    expect(out.pooledFrom).toBeGreaterThan(0);
    expect(out.pooledFrom).toBeLessThanOrEqual((1 << 20) - 50_000);
    expect(out.reused).toBe(true);
    expect(out.sizes.slice(1)).toEqual([4, 1 << 22]);
    expect(out.sizes[0]).toBeGreaterThan((1 << 20) - 50_000);
    expect(out.released).toBe('boolean');
  });

  it('takes a disposed output back at once, and its late finalizer never frees the next loan', () => {
    // y1 is released by hand, so its memory serves y2; then y1's object is collected and its
    // finalizer runs: the memory is y2's now, and y3 must not be given it.
    const script = `
      const a = require(${JSON.stringify(addonPath())});
      const floats = 1 << 20;
      let y1 = a.allocOutput(floats);
      y1[0] = 1;
      const released = a.releaseOutput(y1);
      const detached = y1.length === 0 && y1.buffer.byteLength === 0;
      const again = a.releaseOutput(y1);
      const y2 = a.allocOutput(floats);
      const reused = y2[0] === 1;
      y2.fill(2);
      y1 = null;
      gc();
      setImmediate(() => {
        gc();
        setImmediate(() => {
          const y3 = a.allocOutput(floats);
          y3.fill(3);
          const plain = a.releaseOutput(new Float32Array(8)) || a.releaseOutput(new Float32Array(new SharedArrayBuffer(64))) || a.releaseOutput({});
          const kept = y2.every((v) => v === 2);
          console.log(JSON.stringify({ released, detached, again, reused, kept, plain }));
        });
      });`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' })) as Record<
      string,
      boolean
    >;
    expect(out).toEqual({ released: true, detached: true, again: false, reused: true, kept: true, plain: false });
  });

  it('a disposed predict output gives its memory back and refuses reads; later outputs are whole', async () => {
    const m = sequential({
      layers: [dense({ units: 4096, inputShape: [16], kernelInitializer: initializers.glorotUniform({ seed: 2 }) })],
    });
    const x = Float32Array.from({ length: 128 * 16 }, (_, i) => Math.cos(i));
    const first = m.predict(x);
    const want = first.values.slice();
    first.dispose();
    expect(first.isDisposed).toBe(true);
    expect(first.values.length).toBe(0);
    expect(() => first.dataSync()).toThrow(expect.objectContaining({ code: 'MAAS_ERR_TENSOR_DISPOSED' }));
    expect(() => first.arraySync()).toThrow(expect.objectContaining({ code: 'MAAS_ERR_TENSOR_DISPOSED' }));
    await expect(first.data()).rejects.toMatchObject({ code: 'MAAS_ERR_TENSOR_DISPOSED' });
    first.dispose(); // twice is harmless
    const second = m.predict(x);
    expect(Buffer.from(second.dataSync().buffer).equals(Buffer.from(want.buffer))).toBe(true);
    // A small output is an ordinary array: dispose only marks it.
    const small = m.predict(x.subarray(0, 16));
    small.dispose();
    expect(small.values.length).toBe(4096);
    expect(() => small.dataSync()).toThrow(expect.objectContaining({ code: 'MAAS_ERR_TENSOR_DISPOSED' }));
    m.dispose();
  });

  it('refuses a size that is not a positive count, with a coded error', () => {
    for (const bad of [0, -1, 2 ** 50, Number.NaN])
      expect(() => native.allocOutput(bad)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^MAAS_ERR_ARG/) }));
  });

  it('predicts the same into pooled outputs as into a caller buffer, call after call', () => {
    const m = sequential({
      layers: [dense({ units: 2048, activation: 'relu', inputShape: [64], kernelInitializer: initializers.glorotUniform({ seed: 4 }) })],
    });
    const x = Float32Array.from({ length: 300 * 64 }, (_, i) => Math.sin(i));
    const handle = openPackedModel(m.packed());
    const want = new Float32Array(300 * 2048);
    handle.predict(x, 300, want);
    // Bytes compared as one buffer: a deep equality over 600 000 elements takes seconds a call.
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < 20; i++) expect(bytes(m.predict(x).values).equals(bytes(want))).toBe(true);
    handle.dispose();
    m.dispose();
  });
});
