/**
 * Boundary checks for the public API: tiny predicates that throw MaasError with the registry's
 * one message shape. Native code re-checks only cheap invariants.
 */
import { invalidParameter, type ErrorCode } from './errors.js';

/** True for a plain object literal ({} or Object.create(null)). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Returns value when it is an integer in [min, max], else throws MAAS_ERR_ARG_RANGE. */
export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw invalidParameter(name, range, value, typeof value === 'number' ? 'MAAS_ERR_ARG_RANGE' : 'MAAS_ERR_ARG_TYPE');
  }
  return value;
}

/** Returns value when it is a finite number, else throws. */
export function checkFinite(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidParameter(
      name,
      'a finite number',
      value,
      typeof value === 'number' ? 'MAAS_ERR_ARG_RANGE' : 'MAAS_ERR_ARG_TYPE',
    );
  }
  return value;
}

/** Returns value when it is a non-empty string, else throws. */
export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw invalidParameter(name, 'a non-empty string', value);
  return value;
}

/** Returns value when it is a boolean, else throws. */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidParameter(name, 'a boolean', value);
  return value;
}

/** Returns value when it is one of `choices`, else throws with the list. */
export function checkOneOf<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
  code: ErrorCode = 'MAAS_ERR_ARG_RANGE',
): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw invalidParameter(name, `one of ${choices.map((c) => `'${c}'`).join(', ')}`, value, code);
  }
  return value as T;
}

/** Throws unless `value` is a plain object; names any keys not in `known` (a typo is an error). */
export function checkOptions(name: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw invalidParameter(name, 'an options object', value);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalidParameter(
        `${name}.${key}`,
        `one of the known options (${known.join(', ')})`,
        key,
        'MAAS_ERR_ARG_RANGE',
      );
    }
  }
  return value;
}
