/** Load requests' config overrides: a full config of the scratch model, mutated as JSON of its own. */
import { mutateJson, type Json } from '../json.js';
import type { Rng } from '../random.js';
import { PROBE_WIDTH } from './models.js';

/** A model config as a load request overrides it, before mutation. */
const CONFIG_SEED: Json = {
  max_batch_size: 4,
  input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [PROBE_WIDTH] }],
  dynamic_batching: { max_queue_delay_microseconds: 100, priority_levels: 2, default_priority_level: 1 },
  parameters: { convert_input_datatypes: { string_value: 'true' } },
  version_policy: { latest: { num_versions: 1 } },
};

/** A mutated config override. */
export function mutateConfig(rng: Rng): { text: string; what: string } {
  return mutateJson(rng, CONFIG_SEED);
}
