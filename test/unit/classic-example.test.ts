/** The classic example (examples/classic.ts) runs end to end, far above chance, and reloads exactly. */
import { describe, expect, it } from 'vitest';
import { runClassic } from '../../examples/classic.js';

describe('examples/classic.ts', () => {
  it('trains 10 epochs, evaluates far above chance on held-out rows, saves and reloads identically', async () => {
    const lines: string[] = [];
    const result = await runClassic({ seed: 42, print: (l) => lines.push(l) });
    expect(result.accuracy).toBeGreaterThan(0.9);
    expect(result.identical).toBe(true);
    expect(lines[0]).toMatch(/^held-out: loss \d+\.\d{4}, accuracy \d+\.\d% \(chance is about 50%\)$/);
  });
});
