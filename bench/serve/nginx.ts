/**
 * Debian's nginx in front of maas replicas, as docs/deploy.md configures it: grpc_pass for gRPC
 * (HTTP/2 cleartext on both sides), proxy_pass for REST, kept-alive upstream connections, and
 * the next replica tried when one refuses a connection. Runs in the foreground with a
 * configuration and temporary paths of its own, so neither root nor the system's nginx setup is
 * touched. Shared by the replicas test and the deploy bench.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** nginx's path, or undefined when it is not installed. */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => spawnSync(p, ['-v']).status === 0);

/** A free loopback port (bound and released: nginx takes it next). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The http{} block of the configuration: REST and gRPC upstreams over the replicas. */
export function nginxHttpBlock(
  replicas: { http: number; grpc: number }[],
  listen: { http: number; grpc: number },
  tempDir: string,
): string {
  const servers = (key: 'http' | 'grpc') =>
    replicas.map((r) => `server 127.0.0.1:${r[key]} max_fails=1 fail_timeout=10s;`).join(' ');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${join(tempDir, t)};`)
    .join('\n  ');
  // nginx ends a client connection, and an upstream one, after 1000 requests by default: a gRPC
  // client multiplexing on one connection would lose it every thousand calls.
  return `http {
  access_log off;
  ${temp}
  keepalive_requests 1000000;
  upstream maas_rest { ${servers('http')} keepalive 16; keepalive_requests 1000000; }
  upstream maas_grpc { ${servers('grpc')} keepalive 16; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${listen.http};
    location / {
      proxy_pass http://maas_rest;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
  server {
    listen 127.0.0.1:${listen.grpc} http2;
    location / {
      grpc_pass grpc://maas_grpc;
      grpc_next_upstream error timeout;
    }
  }
}`;
}

/** nginx in the foreground over `replicas`; resolves once it answers through to one. */
export async function startNginx(
  replicas: { http: number; grpc: number }[],
): Promise<{ child: ChildProcess; http: number; grpc: number }> {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install nginx)');
  const dir = await mkdtemp(join(tmpdir(), 'maas-nginx-'));
  const listen = { http: await freePort(), grpc: await freePort() };
  const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
${nginxHttpBlock(replicas, listen, dir)}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${listen.http}/v2/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('nginx did not answer in 10 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, ...listen };
}
