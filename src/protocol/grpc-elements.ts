/**
 * The bound on a ModelInferRequest's typed contents. A packed bool or small integer is one byte on
 * the wire but an eight-byte slot of a JS array once decoded, so the decoder (infer-wire.ts) counts
 * each input's elements as it reads them, keeps no more than the cap, and then checks the counts
 * here: against each input's declared shape, and the request's total against the cap.
 */
import { MaasError } from '../core/errors.js';
import { elementCountMismatch } from './values.js';

/** One input tensor as the count saw it. */
export interface InputOutline {
  name: string;
  /** The declared shape, or null when a dimension is negative or beyond 2^53. */
  shape: number[] | null;
  /** Elements in its typed contents, all fields together. */
  elements: number;
}

/**
 * Why a request's typed contents must not be used, or null: an input whose element count is not
 * its declared shape's, or more elements in all than `maxElements`.
 */
export function typedElementsRefusal(inputs: readonly InputOutline[], maxElements: number): MaasError | null {
  let total = 0;
  for (const input of inputs) {
    if (input.elements === 0) continue;
    const expected = input.shape?.reduce((n, d) => n * d, 1);
    if (expected !== undefined && input.elements !== expected) {
      return elementCountMismatch(input.elements, `input '${input.name}'`, expected);
    }
    total += input.elements;
    if (total > maxElements) {
      return new MaasError(
        'MAAS_ERR_TOO_MANY_ELEMENTS',
        `Expected at most ${maxElements} typed elements in one request (--max-message-bytes / 4) but received ${total} by input '${input.name}'`,
      );
    }
  }
  return null;
}
