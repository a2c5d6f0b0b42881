/**
 * Models at rest, on real files and real AES-256-GCM: every format encrypts and opens to the
 * same model; a wrong key, an unknown key id and a changed byte anywhere in the file are refused
 * with their codes; key files, the environment and a key command (a real child process) give
 * keys, and each way they can be broken is a coded error that quotes no key material.
 */
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ModelKeyring,
  dense,
  decryptModel,
  encryptModel,
  generateModelKey,
  initializers,
  loadModel,
  loadOnnxGraph,
  loadQuantizedModel,
  openModelFile,
  quantize,
  sequential,
  type OpenedModel,
  type Sequential,
} from '../../src/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { openSealedFile } from '../../src/io/sealed.js';
import { runDecrypt, runEncrypt, runKeygen } from '../../src/cli/encrypt.js';
import { errorOf } from '../helpers.js';

const H5 = join(packageRoot(), 'test', 'fixtures', 'keras_h5', 'dl4j_dense_known_weights', 'dense_tensorflow_2.h5');

const temp = () => mkdtemp(join(tmpdir(), 'maas-encryption-'));

function model(seed: number): Sequential {
  return sequential({
    layers: [
      dense({ units: 5, activation: 'relu', inputShape: [3], kernelInitializer: initializers.glorotUniform({ seed }) }),
      dense({
        units: 2,
        activation: 'sigmoid',
        kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }),
        biasInitializer: initializers.randomNormal({ seed: seed + 2 }),
      }),
    ],
  });
}

const rows = Array.from({ length: 16 }, (_, i) => [Math.sin(i), Math.cos(i * 0.7), (i % 5) / 2 - 1]);
const KEY = generateModelKey();
const OTHER_KEY = generateModelKey();
const keyring = (keys: Record<string, string> = { k1: KEY }) => new ModelKeyring({ keys, environment: null });

/** What a model file opens to, without where it came from. */
function contents(opened: OpenedModel) {
  return {
    format: opened.format,
    precision: opened.precision,
    layers: opened.layers.map((l) => ({ ...l, kernel: Array.from(l.kernel), bias: l.bias && Array.from(l.bias) })),
    training: opened.training,
    quantization: opened.quantization,
  };
}

/** The four formats a repository serves, each saved as plaintext: [name, path of the model file]. */
async function plaintextModels(dir: string): Promise<Record<'tfjs fp32' | 'tfjs int8' | 'onnx' | 'keras h5', string>> {
  const fp32 = model(3);
  await fp32.save(join(dir, 'tfjs'));
  const int8 = quantize(model(4), { calibrationData: rows });
  await int8.save(join(dir, 'int8'));
  int8.dispose();
  await model(5).saveOnnx(join(dir, 'model.onnx'));
  return {
    'tfjs fp32': join(dir, 'tfjs', 'model.json'),
    'tfjs int8': join(dir, 'int8', 'model.json'),
    onnx: join(dir, 'model.onnx'),
    'keras h5': H5,
  };
}

const flip = (bytes: Buffer, at: number, bit = 0x01) => {
  const copy = Buffer.from(bytes);
  copy[at]! ^= bit;
  return copy;
};

describe('encrypted model files: every format', () => {
  it('opens to the same model as its plaintext, strictly verified, and hides what it holds', async () => {
    const dir = await temp();
    const keys = keyring();
    for (const [name, path] of Object.entries(await plaintextModels(dir))) {
      const sealed = join(
        dir,
        `${name.replace(' ', '-')}.${path.endsWith('.json') ? 'json' : path.split('.').pop()}.enc`,
      );
      const written = await encryptModel(path, sealed, { keys, keyId: 'k1' });
      expect(written.keyId, name).toBe('k1');
      const strict = !path.endsWith('.h5'); // the Keras fixture records no digest
      const plain = await openModelFile(path, { strictIntegrity: strict });
      const opened = await openModelFile(sealed, { keys, strictIntegrity: strict });
      expect(contents(opened), name).toEqual(contents(plain));
      expect(opened.encryption, name).toEqual({ keyId: 'k1' });
      expect(opened.path).toBe(sealed);
      // Nothing of the plaintext shows: not the model file's text, not a weight, not a file name.
      const cipher = await readFile(sealed);
      const original = await readFile(path);
      for (const at of [0, 100, original.length - 64])
        expect(cipher.indexOf(original.subarray(at, at + 32)), `${name} at ${at}`).toBe(-1);
      expect(cipher.indexOf(Buffer.from('weights.')), name).toBe(-1);
      expect(cipher.indexOf(Buffer.from('model')), name).toBe(-1);
      expect(cipher.indexOf(Buffer.from('k1')), name).toBe(11); // the key id is in the clear, in the header
    }
  });

  it('loads and predicts through loadModel, loadQuantizedModel and loadOnnxGraph', async () => {
    const dir = await temp();
    const keys = keyring();
    const { 'tfjs fp32': tfjs, 'tfjs int8': int8, onnx } = await plaintextModels(dir);
    await encryptModel(tfjs, join(dir, 'model.json.enc'), { keys, keyId: 'k1' });
    await encryptModel(int8, join(dir, 'int8.json.enc'), { keys, keyId: 'k1' });
    await encryptModel(onnx, join(dir, 'model.onnx.enc'), { keys, keyId: 'k1' });
    const x = rows.slice(0, 4);
    const predictions = async (plain: string, sealed: string) => {
      const a = await loadModel(plain);
      const b = await loadModel(sealed, { keys });
      return [Array.from(a.predict(x).values), Array.from(b.predict(x).values)];
    };
    const [tfjsPlain, tfjsSealed] = await predictions(tfjs, join(dir, 'model.json.enc'));
    expect(tfjsSealed).toEqual(tfjsPlain);
    const q = await loadQuantizedModel(int8);
    const qSealed = await loadQuantizedModel(join(dir, 'int8.json.enc'), { keys });
    expect(Array.from(qSealed.predict(x).values)).toEqual(Array.from(q.predict(x).values));
    // A directory holding only model.json.enc opens as that file.
    await mkdir(join(dir, 'only'));
    await encryptModel(tfjs, join(dir, 'only', 'model.json.enc'), { keys, keyId: 'k1' });
    expect((await openModelFile(join(dir, 'only'), { keys })).encryption).toEqual({ keyId: 'k1' });
    const graph = await loadOnnxGraph(join(dir, 'model.onnx.enc'), {}, { keys });
    const plainGraph = await loadOnnxGraph(onnx);
    const input = { [graph.inputNames[0]!]: { data: x.flat(), shape: [4, 3] } };
    expect(graph.run(input)).toEqual(plainGraph.run(input));
  });

  it('refuses a name that promises another format, and what is not a model', async () => {
    const dir = await temp();
    const keys = keyring();
    const { 'tfjs fp32': tfjs, onnx } = await plaintextModels(dir);
    expect(await errorOf(() => encryptModel(onnx, join(dir, 'model.onnx'), { keys, keyId: 'k1' }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected the encrypted file's name to end with .enc/,
    );
    expect(await errorOf(() => encryptModel(onnx, join(dir, 'model.h5.enc'), { keys, keyId: 'k1' }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: The name model.h5.enc says a keras-h5 model but model.onnx is a onnx model/,
    );
    // Renamed after encryption: what it holds decides, and a contradicting name is refused.
    await encryptModel(tfjs, join(dir, 'anything.enc'), { keys, keyId: 'k1' });
    expect((await openModelFile(join(dir, 'anything.enc'), { keys })).format).toBe('tfjs-layers');
    await writeFile(join(dir, 'model.onnx.enc'), await readFile(join(dir, 'anything.enc')));
    expect(await errorOf(() => openModelFile(join(dir, 'model.onnx.enc'), { keys }))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: The encrypted model file .*model.onnx.enc holds model.json \(tfjs-layers\), not the onnx file its name says/,
    );
    await writeFile(join(dir, 'junk.json.enc'), Buffer.alloc(500, 7));
    expect(await errorOf(() => openModelFile(join(dir, 'junk.json.enc'), { keys }))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: Expected an encrypted maas model file at .* but it does not start with 0x89 "MAASENC"/,
    );
  });
});

describe('refusals: a wrong key, an unknown key id, a changed byte', () => {
  it('names a wrong key under the right key id, without quoting either key', async () => {
    const dir = await temp();
    await model(7).saveOnnx(join(dir, 'm.onnx'));
    await encryptModel(join(dir, 'm.onnx'), join(dir, 'm.onnx.enc'), { keys: keyring(), keyId: 'k1' });
    const message = await errorOf(() => openModelFile(join(dir, 'm.onnx.enc'), { keys: keyring({ k1: OTHER_KEY }) }));
    expect(message).toMatch(
      /^MAAS_ERR_MODEL_DECRYPT: The encrypted model file .*m.onnx.enc was encrypted with another key than the one key id 'k1' names here/,
    );
    for (const key of [KEY, OTHER_KEY]) {
      expect(message).not.toContain(key);
      expect(message).not.toContain(Buffer.from(key, 'base64').toString('hex'));
    }
  });

  it('names an unknown key id and the sources searched', async () => {
    const dir = await temp();
    await model(8).saveOnnx(join(dir, 'm.onnx'));
    await encryptModel(join(dir, 'm.onnx'), join(dir, 'm.onnx.enc'), {
      keys: keyring({ 'team-a/2026': KEY }),
      keyId: 'team-a/2026',
    });
    expect(await errorOf(() => openModelFile(join(dir, 'm.onnx.enc'), { keys: keyring() }))).toBe(
      "MAAS_ERR_MODEL_KEY_UNKNOWN: No model key has the key id 'team-a/2026' (searched the keys given (k1))",
    );
    expect(
      await errorOf(() => openModelFile(join(dir, 'm.onnx.enc'), { keys: new ModelKeyring({ environment: {} }) })),
    ).toMatch(
      /^MAAS_ERR_MODEL_KEY_UNKNOWN: .*searched nothing: set MAAS_MODEL_KEY, or give a key file or a key command/,
    );
  });

  it('refuses every single-bit change, in the header, the ciphertext and the tag, and any truncation', async () => {
    const dir = await temp();
    await model(9).saveOnnx(join(dir, 'm.onnx'));
    const path = join(dir, 'm.onnx.enc');
    const keys = keyring();
    await encryptModel(join(dir, 'm.onnx'), path, { keys, keyId: 'k1' });
    const good = await readFile(path);
    const inside = (await openSealedFile(path, keys)).files[0]!.bytes;
    expect(Buffer.from(inside).equals(await readFile(join(dir, 'm.onnx')))).toBe(true);
    const header = 11 + 'k1'.length + 64;
    const codeAt = async (bytes: Buffer) => {
      await writeFile(path, bytes);
      return (await errorOf(() => openSealedFile(path, keys))).split(':')[0]!;
    };
    const codes = new Map<string, Set<string>>();
    const region = (at: number) =>
      at < 11
        ? 'magic, version, algorithm, key id length'
        : at < 13
          ? 'key id'
          : at < header
            ? 'salt and key check'
            : at < good.length - 16
              ? 'ciphertext'
              : 'tag';
    for (let at = 0; at < good.length; at++) {
      for (const bit of [0x01, 0x80]) {
        const code = await codeAt(flip(good, at, bit));
        expect(code, `bit ${bit} of byte ${at} (${region(at)})`).not.toBe('no error');
        if (!codes.has(region(at))) codes.set(region(at), new Set());
        codes.get(region(at))!.add(code);
      }
    }
    expect(Object.fromEntries([...codes].map(([r, c]) => [r, [...c].sort()]))).toEqual({
      'magic, version, algorithm, key id length': ['MAAS_ERR_MODEL_DECRYPT', 'MAAS_ERR_MODEL_FORMAT'],
      'key id': ['MAAS_ERR_MODEL_FORMAT', 'MAAS_ERR_MODEL_KEY_UNKNOWN'],
      'salt and key check': ['MAAS_ERR_MODEL_DECRYPT'],
      ciphertext: ['MAAS_ERR_MODEL_DECRYPT'],
      tag: ['MAAS_ERR_MODEL_DECRYPT'],
    });
    for (const cut of [1, 8, 16, good.length - header])
      expect(await codeAt(good.subarray(0, good.length - cut)), `${cut} bytes cut`).toBe('MAAS_ERR_MODEL_DECRYPT');
    expect(await codeAt(Buffer.concat([good, Buffer.alloc(8)]))).toBe('MAAS_ERR_MODEL_DECRYPT');
    const tampered = flip(good, header + 40);
    await writeFile(path, tampered);
    expect(await errorOf(() => openModelFile(path, { keys }))).toMatch(
      /^MAAS_ERR_MODEL_DECRYPT: The encrypted model file .*m.onnx.enc failed authentication with key 'k1': it was damaged, truncated or tampered with/,
    );
    await writeFile(path, good);
    await expect(openModelFile(path, { keys })).resolves.toMatchObject({ encryption: { keyId: 'k1' } });
  });

  it('two encryptions of one model differ (a fresh salt, so a fresh key and IV, per file)', async () => {
    const dir = await temp();
    await model(10).saveOnnx(join(dir, 'm.onnx'));
    await encryptModel(join(dir, 'm.onnx'), join(dir, 'a.onnx.enc'), { keys: keyring(), keyId: 'k1' });
    await encryptModel(join(dir, 'm.onnx'), join(dir, 'b.onnx.enc'), { keys: keyring(), keyId: 'k1' });
    const [a, b] = [await readFile(join(dir, 'a.onnx.enc')), await readFile(join(dir, 'b.onnx.enc'))];
    expect(a.length).toBe(b.length);
    expect(a.subarray(13, 45).equals(b.subarray(13, 45))).toBe(false); // the salts
    expect(a.subarray(77, 109).equals(b.subarray(77, 109))).toBe(false); // the ciphertexts
  });
});

describe('key sources', () => {
  it('reads a key file of "<key id> <key>" lines, through a symbolic link, only if no one else may read it', async () => {
    const dir = await temp();
    const file = join(dir, 'keys');
    const hex = Buffer.from(OTHER_KEY, 'base64').toString('hex');
    await writeFile(file, `# model keys\nk1 ${KEY}\n\nk2   ${hex}\n`, { mode: 0o600 });
    await model(11).saveOnnx(join(dir, 'm.onnx'));
    await encryptModel(join(dir, 'm.onnx'), join(dir, 'm.onnx.enc'), { keys: keyring({ k2: OTHER_KEY }), keyId: 'k2' });
    await symlink(file, join(dir, 'linked-keys')); // as Kubernetes mounts a secret
    for (const keyFile of [file, join(dir, 'linked-keys')])
      await expect(
        openModelFile(join(dir, 'm.onnx.enc'), { keys: new ModelKeyring({ keyFile, environment: null }) }),
      ).resolves.toMatchObject({
        encryption: { keyId: 'k2' },
      });
    await chmod(file, 0o640);
    await expect(new ModelKeyring({ keyFile: file }).key('k1')).resolves.toBeDefined();
    for (const mode of [0o644, 0o604, 0o660, 0o602]) {
      await chmod(file, mode);
      expect(await errorOf(() => new ModelKeyring({ keyFile: file }).key('k1')), mode.toString(8)).toMatch(
        new RegExp(
          `^MAAS_ERR_KEY_FILE: The model key file .*keys has mode ${mode.toString(8)}: others may read it or its group may change it`,
        ),
      );
    }
  });

  it('refuses a malformed key file, naming the line and never the key', async () => {
    const dir = await temp();
    const file = join(dir, 'keys');
    const cases: [string, RegExp][] = [
      [
        `k1 ${KEY} extra\n`,
        /^MAAS_ERR_KEY_FILE: .*line 1: expected "<key id> <key>" or a key alone but it holds 3 words/,
      ],
      [`k1 ${KEY}\nk1 ${OTHER_KEY}\n`, /^MAAS_ERR_KEY_FILE: .*line 2: its key id is the one on line 1/],
      [
        `k1 ${KEY.slice(0, 40)}\n`,
        /^MAAS_ERR_KEY_INVALID: Expected the key on line 1 of .* to be a 32-byte key written as 64 hex digits or base64 but received 40 characters/,
      ],
      [
        `${KEY} k1\n`,
        /^MAAS_ERR_KEY_INVALID: Expected the key id on line 1 of .* but received 44 characters that are not one$/,
      ],
      [`-k1 ${KEY}\n`, /^MAAS_ERR_KEY_INVALID: Expected the key id on line 1 of .* to be a key id/],
      ['# nothing\n', /^MAAS_ERR_KEY_FILE: The model key file .* holds no key/],
    ];
    for (const [text, expected] of cases) {
      await writeFile(file, text, { mode: 0o600 });
      const message = await errorOf(() => new ModelKeyring({ keyFile: file }).key('k1'));
      expect(message, text).toMatch(expected);
      expect(message).not.toContain(KEY.slice(0, 40));
      expect(message).not.toContain(OTHER_KEY.slice(0, 40));
    }
    expect(await errorOf(() => new ModelKeyring({ keyFile: join(dir, 'missing') }).key('k1'))).toMatch(
      /^MAAS_ERR_KEY_FILE: The model key file .*missing cannot be opened \(ENOENT\)/,
    );
    expect(await errorOf(() => new ModelKeyring({ keyFile: dir }).key('k1'))).toMatch(
      /^MAAS_ERR_KEY_FILE: .* is not a regular file/,
    );
  });

  it('reads MAAS_MODEL_KEY (hex or base64) under MAAS_MODEL_KEY_ID, and refuses a malformed one without quoting it', async () => {
    const hex = Buffer.from(KEY, 'base64').toString('hex');
    const fromHex = await new ModelKeyring({ environment: { MAAS_MODEL_KEY: hex, MAAS_MODEL_KEY_ID: 'prod-1' } }).key(
      'prod-1',
    );
    const fromBase64 = await new ModelKeyring({ environment: { MAAS_MODEL_KEY: KEY } }).key('default');
    expect(fromHex.equals(fromBase64)).toBe(true);
    expect(JSON.stringify({ key: fromHex })).toBe('{"key":{}}'); // a KeyObject does not serialize its bytes
    const bad = `${hex.slice(0, 60)}zz`;
    let message = '';
    try {
      new ModelKeyring({ environment: { MAAS_MODEL_KEY: bad } });
    } catch (e) {
      message = `${(e as { code: string }).code}: ${(e as Error).message}`;
    }
    expect(message).toBe(
      'MAAS_ERR_KEY_INVALID: Expected MAAS_MODEL_KEY to be a 32-byte key written as 64 hex digits or base64 but received 62 characters that are neither',
    );
  });

  describe('a key command', () => {
    /** A node script as the key command: prints k1's key, counts its runs, and misbehaves on request. */
    async function hook(dir: string): Promise<{ argv: string[]; runs: () => Promise<number> }> {
      const script = join(dir, 'kms.mjs');
      const counter = join(dir, 'runs');
      await writeFile(
        script,
        `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(counter)}, 'x');
const id = process.argv[2];
if (id !== process.env.MAAS_MODEL_KEY_ID || process.env.MAAS_MODEL_KEY !== undefined) process.exit(9);
if (id === 'k1') console.log(${JSON.stringify(KEY)});
else if (id === 'slow') setTimeout(() => {}, 60000);
else if (id === 'chatty') process.stdout.write('x'.repeat(5000));
else if (id === 'garbage') console.log('not a key');
else { console.error('kms: AccessDenied for ' + id); process.exit(3); }
`,
      );
      return {
        argv: [process.execPath, script, '{keyId}'],
        runs: () =>
          readFile(counter, 'utf8').then(
            (s) => s.length,
            () => 0,
          ),
      };
    }

    it('gives the key it prints, once for concurrent and cached lookups', async () => {
      const dir = await temp();
      const { argv, runs } = await hook(dir);
      const keys = new ModelKeyring({
        keyCommand: argv,
        environment: { MAAS_MODEL_KEY: OTHER_KEY, MAAS_MODEL_KEY_ID: 'env' },
      });
      await model(12).saveOnnx(join(dir, 'm.onnx'));
      await encryptModel(join(dir, 'm.onnx'), join(dir, 'm.onnx.enc'), { keys: keyring(), keyId: 'k1' });
      const [a, b] = await Promise.all([
        openModelFile(join(dir, 'm.onnx.enc'), { keys }),
        openModelFile(join(dir, 'm.onnx.enc'), { keys }),
      ]);
      expect([a.encryption, b.encryption]).toEqual([{ keyId: 'k1' }, { keyId: 'k1' }]);
      await openModelFile(join(dir, 'm.onnx.enc'), { keys });
      expect(await runs()).toBe(1);
      // Without a cache, each lookup asks the command.
      const uncached = new ModelKeyring({ keyCommand: argv, cacheMs: 0, environment: null });
      await uncached.key('k1');
      await uncached.key('k1');
      expect(await runs()).toBe(3);
    });

    it('codes a failing, hanging, chatty or garbled command, quoting its stderr but never its output', async () => {
      const dir = await temp();
      const { argv } = await hook(dir);
      const keys = new ModelKeyring({ keyCommand: argv, environment: null });
      const impatient = new ModelKeyring({ keyCommand: argv, keyCommandTimeoutMs: 2000, environment: null });
      expect(await errorOf(() => keys.key('other'))).toBe(
        `MAAS_ERR_KEY_COMMAND: The model key command ${process.execPath} for key id 'other' exited with code 3: kms: AccessDenied for other`,
      );
      expect(await errorOf(() => impatient.key('slow'))).toBe(
        `MAAS_ERR_KEY_COMMAND: The model key command ${process.execPath} for key id 'slow' did not answer within 2000 ms and was stopped`,
      );
      expect(await errorOf(() => keys.key('chatty'))).toMatch(
        /^MAAS_ERR_KEY_COMMAND: .* printed more than 4096 bytes; a key command prints one key/,
      );
      expect(await errorOf(() => keys.key('garbage'))).toBe(
        "MAAS_ERR_KEY_INVALID: Expected the output of the key command for key id 'garbage' to be a 32-byte key written as 64 hex digits or base64 but received 9 characters that are neither",
      );
      expect(await errorOf(() => new ModelKeyring({ keyCommand: [join(dir, 'missing')] }).key('k1'))).toMatch(
        /^MAAS_ERR_KEY_COMMAND: The model key command .*missing for key id 'k1' could not be started \(ENOENT\)/,
      );
      // A failure is not cached: the next lookup asks again.
      await expect(keys.key('k1')).resolves.toBeDefined();
    });
  });
});

describe('maas keygen, encrypt and decrypt', () => {
  it('makes a 0600 key file, adds a key for rotation, and round-trips a model through encrypt and decrypt', async () => {
    const dir = await temp();
    const printed: string[] = [];
    const print = (line: string) => printed.push(line);
    const keyFile = join(dir, 'keys');
    await runKeygen({ keyId: 'v1', out: keyFile, print });
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    await runKeygen({ keyId: 'v2', out: keyFile, print });
    expect(await errorOf(() => runKeygen({ keyId: 'v2', out: keyFile, print }))).toMatch(
      /^MAAS_ERR_KEY_FILE: The model key file .* has a key with the key id 'v2' already/,
    );
    expect((await readFile(keyFile, 'utf8')).split('\n').map((l) => l.split(' ')[0])).toEqual(['v1', 'v2', '']);
    await runKeygen({ print });
    expect(printed.at(-1)).toMatch(/^default [A-Za-z0-9+/]{43}=$/);

    const m = model(13);
    await m.save(join(dir, 'plain'));
    expect(await errorOf(() => runEncrypt(join(dir, 'plain'), join(dir, 'model.json.enc'), { keyFile, print }))).toBe(
      'MAAS_ERR_MODEL_KEY_UNKNOWN: The keys hold 2 key ids (v1, v2): name the one to encrypt with',
    );
    await runEncrypt(join(dir, 'plain'), join(dir, 'model.json.enc'), { keyFile, keyId: 'v2', print });
    expect(printed.at(-1)).toMatch(
      /^encrypted .*plain \(model.json, weights\.[0-9a-f]{16}\.bin\) with key id 'v2': .*model.json.enc$/,
    );
    const loaded = await loadModel(join(dir, 'model.json.enc'), { keys: new ModelKeyring({ keyFile }) });
    expect(Array.from(loaded.predict(rows).values)).toEqual(Array.from(m.predict(rows).values));

    await runDecrypt(join(dir, 'model.json.enc'), join(dir, 'out'), { keyFile, print });
    const names = (await readdir(join(dir, 'plain'))).sort();
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(names);
    for (const name of names) {
      expect(await readFile(join(dir, 'out', name))).toEqual(await readFile(join(dir, 'plain', name)));
      expect((await stat(join(dir, 'out', name))).mode & 0o777).toBe(0o600);
    }
    expect(
      await errorOf(() =>
        decryptModel(join(dir, 'model.json.enc'), join(dir, 'out'), { keys: new ModelKeyring({ keyFile }) }),
      ),
    ).toMatch(/^MAAS_ERR_ARG_RANGE: .*model.json exists; decrypt writes no file over another/);
    expect(
      await errorOf(() =>
        encryptModel(join(dir, 'model.json.enc'), join(dir, 'again.json.enc'), { keys: keyring(), keyId: 'k1' }),
      ),
    ).toMatch(/^MAAS_ERR_ARG_RANGE: .*model.json.enc is encrypted already/);
  });

  it('keeps a sharded tfjs model whole: every weights file inside, manifest paths as written', async () => {
    const dir = await temp();
    const m = model(14);
    await m.save(join(dir, 'plain'));
    // Split the one weights file into two shards under a subdirectory, as converters write them.
    const json = JSON.parse(await readFile(join(dir, 'plain', 'model.json'), 'utf8')) as {
      weightsManifest: { paths: string[] }[];
    };
    const weights = await readFile(join(dir, 'plain', json.weightsManifest[0]!.paths[0]!));
    await mkdir(join(dir, 'plain', 'shards'));
    await writeFile(join(dir, 'plain', 'shards', 'group1-shard1of2.bin'), weights.subarray(0, 40));
    await writeFile(join(dir, 'plain', 'shards', 'group1-shard2of2.bin'), weights.subarray(40));
    json.weightsManifest[0]!.paths = ['./shards/group1-shard1of2.bin', 'shards/../shards/group1-shard2of2.bin'];
    await writeFile(join(dir, 'plain', 'model.json'), JSON.stringify(json));
    const keys = keyring();
    const result = await encryptModel(join(dir, 'plain'), join(dir, 'model.json.enc'), { keys, keyId: 'k1' });
    expect(result.files).toEqual(['model.json', 'shards/group1-shard1of2.bin', 'shards/group1-shard2of2.bin']);
    const loaded = await loadModel(join(dir, 'model.json.enc'), { keys, strictIntegrity: true });
    expect(Array.from(loaded.predict(rows).values)).toEqual(Array.from(m.predict(rows).values));
    await decryptModel(join(dir, 'model.json.enc'), join(dir, 'out'), { keys });
    expect(await readFile(join(dir, 'out', 'shards', 'group1-shard2of2.bin'))).toEqual(weights.subarray(40));
  });
});

describe('the layout docs/security.md and sealed.ts describe', () => {
  /** An encrypted file built here from the documented layout alone, around any payload. */
  function sealAsDocumented(keyId: string, keyBase64: string, payload: Buffer): Buffer {
    const salt = randomBytes(32);
    const okm = Buffer.from(hkdfSync('sha256', Buffer.from(keyBase64, 'base64'), salt, 'maas sealed model v1', 76));
    const header = Buffer.concat([
      Buffer.from([0x89, ...Buffer.from('MAASENC'), 1, 1, keyId.length]),
      Buffer.from(keyId, 'ascii'),
      salt,
      okm.subarray(44, 76),
    ]);
    const cipher = createCipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32, 44));
    cipher.setAAD(header);
    return Buffer.concat([header, cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
  }

  /** A payload: the table (count, then name length, name, size per file), padded, then the files, each padded. */
  function payload(files: [string, Buffer, number?][], count = files.length): Buffer {
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
    const table = [Buffer.from(Uint32Array.of(count).buffer)];
    for (const [name, bytes, claimed] of files) {
      const n = Buffer.from(name);
      table.push(
        Buffer.from(Uint16Array.of(n.length).buffer),
        n,
        Buffer.from(Uint32Array.of(claimed ?? bytes.length).buffer),
      );
    }
    return Buffer.concat([pad(Buffer.concat(table)), ...files.map(([, bytes]) => pad(bytes))]);
  }

  it('opens a file written from the documentation, and refuses a lying table even under a valid tag', async () => {
    const dir = await temp();
    await model(15).saveOnnx(join(dir, 'm.onnx'));
    const onnx = await readFile(join(dir, 'm.onnx'));
    const path = join(dir, 'm.onnx.enc');
    await writeFile(path, sealAsDocumented('k1', KEY, payload([['m.onnx', onnx]])));
    const opened = await openModelFile(path, { keys: keyring(), strictIntegrity: true });
    expect(contents(opened)).toEqual(contents(await openModelFile(join(dir, 'm.onnx'))));
    const sealed = await openSealedFile(path, keyring());
    expect(sealed.files[0]!.bytes.byteOffset % 8).toBe(0); // weights are read where they lie

    const refusals: [Buffer, RegExp][] = [
      [payload([['m.onnx', onnx, onnx.length + 8]]), /its table accounts for \d+ bytes but it holds \d+/],
      [payload([['m.onnx', onnx]], 0), /it lists 0 files; it holds 1 to 4096/],
      [payload([['m.onnx', onnx]], 2), /its table (runs past its end|accounts for)/],
      [payload([['../m.onnx', onnx]]), /the name of file 0: it is not a relative path of named parts/],
      [
        payload([
          ['m.onnx', onnx],
          ['m.onnx', onnx],
        ]),
        /it lists m.onnx twice/,
      ],
      [payload([['m\\x.onnx', onnx]]), /holds a control character or a backslash/],
    ];
    for (const [bytes, expected] of refusals) {
      await writeFile(path, sealAsDocumented('k1', KEY, bytes));
      const message = await errorOf(() => openSealedFile(path, keyring()));
      expect(message).toMatch(
        /^MAAS_ERR_MODEL_FORMAT: The encrypted model file .* decrypted, but its contents are malformed: /,
      );
      expect(message).toMatch(expected);
    }
    await writeFile(
      path,
      sealAsDocumented(
        'k1',
        KEY,
        payload([
          ['m.onnx', onnx],
          ['extra.bin', onnx],
        ]),
      ),
    );
    expect(await errorOf(() => openModelFile(path, { keys: keyring() }))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: The encrypted model file .* holds 2 files; an encrypted onnx file holds one/,
    );
  });

  it('refuses names the writer cannot store', async () => {
    const { writeSealedFile } = await import('../../src/io/sealed.js');
    const dir = await temp();
    const key = await keyring().key('k1');
    const bytes = Uint8Array.from({ length: 33 }, (_, i) => i);
    expect(await errorOf(() => writeSealedFile(join(dir, 'y.enc'), [{ name: '../escape', bytes }], 'k1', key))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Cannot encrypt the model: the file name "..\/escape" cannot be stored: it is not a relative path/,
    );
    expect(await errorOf(() => writeSealedFile(join(dir, 'y.enc'), [], 'k1', key))).toMatch(/has 0 files/);
    expect(await errorOf(() => writeSealedFile(join(dir, 'y.enc'), [{ name: 'a', bytes }], '-k', key))).toMatch(
      /^MAAS_ERR_KEY_INVALID: Expected the key id to encrypt with to be a key id/,
    );
    // A key id may reach a key command's arguments: it cannot climb out of a directory there.
    for (const keyId of ['a/../b', '..', 'k 1'])
      expect(
        await errorOf(() => writeSealedFile(join(dir, 'y.enc'), [{ name: 'a', bytes }], keyId, key)),
        keyId,
      ).toMatch(/^MAAS_ERR_KEY_INVALID: /);
    expect(await readdir(dir)).toEqual([]);
  });
});
