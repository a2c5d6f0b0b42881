/**
 * The model file formats and the one rule that tells them apart by name, shared by the opener
 * and the encrypted container (whose inner file's name says what it holds).
 */

/** The file formats openModelFile reads. */
export type ModelFileFormat = 'tfjs-layers' | 'keras-h5' | 'onnx';

/** A file's format by its name's extension (.json, .onnx, .h5 or .hdf5), or null for any other name. */
export function formatOfFileName(name: string): ModelFileFormat | null {
  if (/\.onnx$/i.test(name)) return 'onnx';
  if (/\.(h5|hdf5)$/i.test(name)) return 'keras-h5';
  if (/\.json$/i.test(name)) return 'tfjs-layers';
  return null;
}
