import { mkdir } from "node:fs/promises";
import { SyncEngine } from "../backup/engine.js";
import { SharedLock } from "../backup/lock.js";
import type { SourcePart } from "../backup/sourceRun.js";
import { SourceSet } from "../clips/sources.js";
import type { Config, LoadedConfig } from "../config/load.js";
import { AgeVault } from "../crypto/ageVault.js";
import { Manifest } from "../manifest/manifest.js";
import { sourceBackends } from "../storage/source/registry.js";
import { withUploadLimit } from "../storage/uploadLimit.js";
import { vaultBackends } from "../storage/vault/registry.js";
import { BandwidthLimit } from "../util/bandwidth.js";
import { EventBus } from "../util/events.js";
import type { Logger } from "../util/log.js";
import { type Keys, vaultKeys } from "./keys.js";

/**
 * The composition root: every part of the vault is built here from the config, each on first
 * use, and nowhere else. A command takes the parts it needs and hands each module only what
 * that module uses; `close()` releases what was built.
 */
export class App {
  readonly config: Config;
  readonly events: EventBus;
  readonly sourceSet: SourceSet;
  private manifestP: Promise<Manifest> | undefined;
  private sourcesP: Promise<SourcePart[]> | undefined;
  private vaultP: Promise<AgeVault> | undefined;
  private keysP: Promise<Keys> | undefined;
  private engineP: Promise<SyncEngine> | undefined;
  private lockP: Promise<SharedLock> | undefined;
  /** sync.bandwidthLimit: the one token bucket every upload of this process shares. */
  readonly bandwidth: BandwidthLimit;

  constructor(
    readonly loaded: LoadedConfig,
    readonly logger: Logger,
  ) {
    this.config = loaded.config;
    this.events = new EventBus(logger);
    this.sourceSet = new SourceSet(this.config.sources);
    this.bandwidth = BandwidthLimit.fromConfig(this.config.sync.bandwidthLimit);
  }

  manifest(): Promise<Manifest> {
    this.manifestP ??= (async () => {
      await mkdir(this.config.state.dir, { recursive: true, mode: 0o700 });
      return Manifest.open(this.config.state.dir);
    })();
    return this.manifestP;
  }

  /**
   * The state dir's run lock: taking it re-reads the manifest (another process may have written
   * it), and after a killed run recounts the totals (it may have recorded a clip but not them).
   */
  lock(): Promise<SharedLock> {
    this.lockP ??= this.manifest().then(
      (manifest) =>
        new SharedLock(this.config.state.dir, async (stalePid) => {
          await manifest.reload();
          if (stalePid === undefined) return;
          this.logger.warn(
            { pid: stalePid },
            "the previous run did not finish; checking the manifest",
          );
          await manifest.reconcileTotals();
        }),
    );
    return this.lockP;
  }

  keys(): Promise<Keys> {
    this.keysP ??= this.manifest().then((m) => vaultKeys(this.config.encryption, m, this.logger));
    return this.keysP;
  }

  /** Every camera device, made (not connected) from `sources`. */
  sources(): Promise<SourcePart[]> {
    this.sourcesP ??= Promise.all(
      this.config.sources.map(async (s, i) => {
        const backend = sourceBackends.get(s.type);
        if (!backend) throw new Error(`sources[${i}]: unknown type ${s.type}`);
        const configPath = this.config.sources.length > 1 ? `sources[${i}]` : "source";
        const source = await backend.create(s, {
          stateDir: this.config.state.dir,
          logger: this.logger.child({ source: s.name }),
          configPath,
        });
        return {
          ref: { name: s.name, prefix: s.prefix },
          source,
          stableSeconds: s.stableSeconds,
          incompleteAfterSeconds: s.incompleteAfterSeconds,
          extensions: s.extensions,
          root: { key: `${configPath}.path`, path: String(s.path ?? "/") },
        };
      }),
    );
    return this.sourcesP;
  }

  /** The vault store under the age layer. */
  vault(): Promise<AgeVault> {
    this.vaultP ??= (async () => {
      const d = this.config.destination;
      const backend = vaultBackends.get(d.type);
      if (!backend) throw new Error(`destination: unknown type ${d.type}`);
      await mkdir(this.config.state.dir, { recursive: true, mode: 0o700 });
      const store = await backend.create(d, {
        stateDir: this.config.state.dir,
        logger: this.logger.child({ store: "destination" }),
        configPath: "destination",
      });
      return new AgeVault(withUploadLimit(store, this.bandwidth), await this.keys());
    })();
    return this.vaultP;
  }

  engine(): Promise<SyncEngine> {
    this.engineP ??= (async () => {
      const sync = this.config.sync;
      return new SyncEngine({
        sources: await this.sources(),
        sourceSet: this.sourceSet,
        vault: await this.vault(),
        manifest: await this.manifest(),
        events: this.events,
        logger: this.logger,
        lock: await this.lock(),
        concurrency: sync.concurrency,
        retries: sync.retries,
        idleTimeoutMs: sync.idleTimeoutSeconds * 1000,
        clipTimeoutMs: sync.clipTimeoutSeconds * 1000,
      });
    })();
    return this.engineP;
  }

  /** Every video extension any source takes (to tell clips from other files in the vault). */
  get extensions(): string[] {
    return [...new Set(this.config.sources.flatMap((s) => s.extensions))];
  }

  /** Releases the connections of what was built. */
  async close(): Promise<void> {
    const closing: Array<Promise<unknown>> = [];
    if (this.sourcesP) {
      closing.push(this.sourcesP.then((parts) => Promise.all(parts.map((p) => p.source.close()))));
    }
    if (this.vaultP) closing.push(this.vaultP.then((v) => v.store.close()));
    await Promise.allSettled(closing);
  }
}
