/**
 * The model summary table in tfjs's layout: layers, output shapes and parameter counts.
 */
import type { Dense } from '../layers/dense.js';

/** Prints a table of layers, output shapes and parameter counts (tfjs's summary layout). */
export function printSummary(
  layers: readonly Dense[],
  lineLength = 65,
  positions = [0.45, 0.85, 1],
  printFn: (line: string) => void = console.log,
): void {
  const cols = positions.map((p) => Math.floor(lineLength * p));
  const row = (cells: string[]): string => {
    let line = '';
    cells.forEach((c, j) => {
      line = (line + c).slice(0, cols[j]).padEnd(cols[j]!);
    });
    return line;
  };
  printFn('_'.repeat(lineLength));
  printFn(row(['Layer (type)', 'Output shape', 'Param #']));
  printFn('='.repeat(lineLength));
  layers.forEach((layer, j) => {
    const act = layer.activation === 'linear' ? '' : ` ${layer.activation}`;
    printFn(row([`${layer.name} (Dense${act})`, `[null,${layer.units}]`, String(layer.countParams())]));
    printFn(j === layers.length - 1 ? '='.repeat(lineLength) : '_'.repeat(lineLength));
  });
  const total = layers.reduce((n, l) => n + l.countParams(), 0);
  printFn(`Total params: ${total}`);
  printFn(`Trainable params: ${total}`);
  printFn('Non-trainable params: 0');
  printFn('_'.repeat(lineLength));
}
