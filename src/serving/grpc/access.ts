/**
 * Access control on gRPC: one server interceptor, before any handler. The table says each RPC's
 * scope and where its request names a model; the interceptor authenticates the call from its
 * metadata (`authorization: Bearer`, the token header, or the verified client certificate),
 * checks the scope (and, per message, the model), holds a concurrent-request slot until the
 * status goes out, and tells the audit trail how the call ended. A ModelStreamInfer message
 * for a model the caller may not use is answered with an error on the stream, which goes on.
 */
import * as grpc from '@grpc/grpc-js';
import { MaasError } from '../../core/errors.js';
import { ALL_MODELS, credentialsOf, type AccessControl, type Caller } from '../auth/access.js';
import type { Release } from '../auth/rate-limit.js';
import type { Scope } from '../auth/tokens.js';
import { refusalOf, toGrpcError } from './codec.js';

/** Where a request message names its model. */
type ModelOf = (request: Record<string, unknown>) => string | typeof ALL_MODELS;

/** One RPC's access rule: its scope, and the model its request names (absent: a server-wide call). */
export interface RpcAccess {
  scope: Scope;
  model?: ModelOf;
  /** A bidirectional stream: the rate and the model are checked per message. */
  stream?: boolean;
  /**
   * A stream about one model: its first message names the model and is checked; the call takes
   * one request slot until its status, and later messages pass.
   */
  session?: boolean;
}

const named: ModelOf = (r) => (typeof r.name === 'string' ? r.name : '');
const modelName: ModelOf = (r) => (typeof r.model_name === 'string' ? r.model_name : '');

/** Every RPC of inference.GRPCInferenceService; an RPC missing here is refused to everyone. */
export const RPC_ACCESS: Readonly<Record<string, RpcAccess>> = {
  ServerLive: { scope: 'health' },
  ServerReady: { scope: 'health' },
  ModelReady: { scope: 'health', model: named },
  ServerMetadata: { scope: 'metadata' },
  ModelMetadata: { scope: 'metadata', model: named },
  ModelConfig: { scope: 'metadata', model: named },
  ModelStatistics: { scope: 'metadata', model: (r) => (typeof r.name === 'string' && r.name ? r.name : ALL_MODELS) },
  RepositoryIndex: { scope: 'repository', model: () => ALL_MODELS },
  RepositoryModelLoad: { scope: 'repository', model: modelName },
  RepositoryModelUnload: { scope: 'repository', model: modelName },
  ModelInfer: { scope: 'infer', model: modelName },
  ModelStreamInfer: { scope: 'infer', model: modelName, stream: true },
  // maas.ExplainService
  ModelExplain: { scope: 'explain', model: modelName },
  // maas.UpdateService
  Update: { scope: 'update', model: modelName, session: true },
  // maas.FederatedService: clients and the operator alike need the update scope on the model.
  OpenRound: { scope: 'update', model: modelName },
  GetRound: { scope: 'update', model: modelName },
  SubmitUpdate: { scope: 'update', model: modelName },
  CloseRound: { scope: 'update', model: modelName },
};

/** Settings of the interceptor beyond the access control itself. */
export interface GrpcAccessOptions {
  /** A metadata key that carries a bare token (Triton's restricted-API form), besides `authorization`. */
  tokenHeader?: string;
}

function peerOf(call: grpc.ServerInterceptingCallInterface): string {
  return call.getConnectionInfo().remoteAddress ?? call.getPeer();
}

/** The code the audit trail records for a status (the maas code when there is one). */
function resultOf(status: { code: grpc.status; metadata?: grpc.Metadata | null }): string {
  if (status.code === grpc.status.OK) return 'ok';
  const code = status.metadata?.get('maas-error-code')[0];
  return typeof code === 'string' ? code : (grpc.status[status.code] ?? String(status.code));
}

/** The interceptor that enforces `access` on every RPC in RPC_ACCESS. */
export function accessInterceptor(access: AccessControl, options: GrpcAccessOptions = {}): grpc.ServerInterceptor {
  const tokenHeader = options.tokenHeader?.toLowerCase();
  return (descriptor, call) => {
    const name = descriptor.path.slice(descriptor.path.lastIndexOf('/') + 1);
    const rule = RPC_ACCESS[name];
    /** While a new token is being hashed: settles (never rejects) once the call is admitted or refused. */
    let pending: Promise<unknown> | null = null;
    let settled: Caller | null = null;
    let release: Release | undefined;
    let model: string | undefined;
    let refused = false;
    const refuse = (error: unknown) => {
      if (refused) return;
      refused = true;
      release?.();
      call.sendStatus(toGrpcError(error));
    };
    /** The authenticated caller passes on: a server-wide call is decided now, one naming a model per message. */
    const admitCall = (caller: Caller, next: () => void) => {
      try {
        if (!rule!.model) access.authorize(caller, rule!.scope);
        if (!rule!.model || rule!.stream) release = access.admit(caller);
      } catch (error) {
        return refuse(error);
      }
      settled = caller;
      next();
    };
    const admitMessage = (message: Record<string, unknown>, next: (message: unknown) => void) => {
      if (refused) return;
      if (!settled || refusalOf(message)) return next(message); // open, or a decode error to answer
      if (rule!.session && release) return next(message); // the session's model was checked on its first message
      const named = rule!.model!(message);
      model = typeof named === 'string' ? named : undefined;
      try {
        access.authorize(settled, rule!.scope, named);
        if (rule!.stream) access.take(settled);
        else release = access.admit(settled);
      } catch (error) {
        if (!rule!.stream) return refuse(error);
        // On a stream the refusal is this message's answer; the stream goes on.
        return next({ refused: error, id: message.id ?? '', model_name: model ?? '' });
      }
      next(message);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            if (!rule)
              return refuse(
                new MaasError('MAAS_ERR_PERMISSION_DENIED', `No access rule covers ${name}: refused to everyone`),
              );
            if (access.isOpen(rule.scope, rule.model !== undefined)) return nextMetadata(metadata);
            const pass = () => nextMetadata(metadata);
            let caller: Caller | Promise<Caller>;
            try {
              caller = access.authenticate({
                transport: 'grpc',
                peer: peerOf(call),
                action: name,
                credentials: credentialsOf(
                  metadata.get('authorization')[0],
                  tokenHeader ? metadata.get(tokenHeader)[0] : undefined,
                  () => call.getAuthContext().sslPeerCertificate,
                ),
              });
            } catch (error) {
              return refuse(error);
            }
            // A token seen before is decided at once; only a new one waits for its hash.
            if (!(caller instanceof Promise)) return admitCall(caller, pass);
            pending = caller
              .then(
                (authenticated) => admitCall(authenticated, pass),
                (error: unknown) => refuse(error),
              )
              .finally(() => (pending = null)); // messages queued meanwhile are chained before this
          },
          onReceiveMessage: (message: Record<string, unknown>, nextMessage) => {
            if (!rule?.model) return nextMessage(message);
            if (pending) void pending.then(() => admitMessage(message, nextMessage));
            else admitMessage(message, nextMessage);
          },
          onCancel: () => release?.(),
        }),
      sendMessage: (message, next) => {
        // Each answer on a stream is one request done (the status ends the stream itself).
        if (rule?.stream && settled) {
          const answer = message as { error_message?: string; infer_response?: { model_name?: string } };
          access.record(settled, rule.scope, answer.infer_response?.model_name, answer.error_message ? 'error' : 'ok');
        }
        next(message);
      },
      sendStatus: (status, next) => {
        release?.();
        if (settled && rule && !rule.stream) access.record(settled, rule.scope, model, resultOf(status));
        next(status);
      },
    });
  };
}
