import { EventEmitter } from "node:events";

/** What a sync run reports. Extensions (Home Assistant, Telegram, progress bars) listen here. */
export interface VaultEvents {
  syncStarted: [{ runId: string; trigger: string; startedAt: string }];
  syncPlanned: [{ runId: string; toUpload: number; bytes: number; pending: number }];
  clipProgress: [{ runId: string; id: string; bytes: number }];
  clipBackedUp: [
    { runId: string; id: string; camera: string; date: string; size: number; at: string },
  ];
  clipFailed: [{ runId: string; id: string; error: string; willRetry: boolean }];
  syncFinished: [RunSummary];
  syncFailed: [{ runId: string; error: string; at: string }];
}

export interface RunSummary {
  runId: string;
  trigger: string;
  startedAt: string;
  finishedAt: string;
  uploaded: number;
  failed: number;
  pending: number;
  bytes: number;
  /** When not every eligible clip was backed up: the first error seen. */
  error?: string;
  /** Soonest time (ms epoch) at which a pending clip should have settled. */
  nextSettleAt?: number;
}

/** A typed event bus, as zigbee2mqtt's: producers never import their listeners. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(50);
  }

  emit<K extends keyof VaultEvents>(event: K, ...args: VaultEvents[K]): void {
    this.emitter.emit(event, ...args);
  }

  on<K extends keyof VaultEvents>(
    event: K,
    listener: (...args: VaultEvents[K]) => void,
  ): () => void {
    const l = listener as (...a: unknown[]) => void;
    this.emitter.on(event, l);
    return () => this.emitter.off(event, l);
  }
}
