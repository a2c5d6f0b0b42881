/**
 * Importing maas loads no addon: a process whose MAAS_ADDON_PATH points nowhere imports the whole
 * package, the protocol and the clients, and infers through both clients against a real server.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const CHILD = `
  const maas = await import(process.env.ROOT + '/src/index.ts');
  await import(process.env.ROOT + '/src/protocol/grpc.ts');
  const native = await import(process.env.ROOT + '/src/native/index.ts');
  const x = new Float32Array(JSON.parse(process.env.X));
  const request = { model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 5], data: x }] };
  const grpc = new maas.GrpcInferenceClient(process.env.GRPC);
  const viaGrpc = await grpc.infer(request);
  grpc.close();
  const viaHttp = await new maas.HttpInferenceClient(process.env.HTTP).infer(request);
  console.log(JSON.stringify({
    grpc: Array.from(viaGrpc.outputs[0].data),
    http: Array.from(viaHttp.outputs[0].data),
    loaded: native.isAddonLoaded(),
  }));
`;

describe('without a compiled addon', () => {
  let server: RunningServer;
  const model = smallModel(5, 3, 11);

  beforeAll(async () => {
    const root = await tempRepository();
    await addVersion(root, 'm', 1, model);
    server = await startServer(root);
  });
  afterAll(() => server?.close());

  it('imports the package and infers through the gRPC and HTTP clients', async () => {
    const x = inputs(2, 5, 3);
    // Asynchronous: the server answering the child runs on this process's event loop.
    const child = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: packageRoot(),
      env: {
        ...process.env,
        ROOT: packageRoot(),
        MAAS_ADDON_PATH: join(packageRoot(), 'no-such-dir', 'maas.node'),
        X: JSON.stringify(Array.from(x)),
        GRPC: `127.0.0.1:${server.grpcPort}`,
        HTTP: `http://127.0.0.1:${server.httpPort}`,
      },
      timeout: 60_000,
    });
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as {
      grpc: number[];
      http: number[];
      loaded: boolean;
    };
    const expected = Array.from(model.predict(x).dataSync());
    expect(result.loaded).toBe(false);
    for (const got of [result.grpc, result.http]) {
      expect(got).toHaveLength(6);
      got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    }
  });
});
