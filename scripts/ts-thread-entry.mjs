// A worker thread's entry when maas runs from its TypeScript sources (tests, benches): requires
// the module named in workerData.maasModule through tsx's CommonJS hook, which a .ts entry
// given to new Worker() would not get.
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';

createRequire(import.meta.url)(workerData.maasModule);
