import { Client, FTPError } from "basic-ftp";

/** An idle connection older than this is probed with NOOP before reuse. */
const PROBE_IDLE_MS = 15_000;

export function isFtpError(err: unknown, ...codes: number[]): err is FTPError {
  return err instanceof FTPError && (codes.length === 0 || codes.includes(err.code));
}

/** Pool of basic-ftp clients: each Client runs one command at a time. */
export class FtpPool {
  private readonly idle: Array<{ client: Client; since: number }> = [];
  private readonly all = new Set<Client>();
  private readonly waiters: Array<(client: Client) => void> = [];
  private created = 0;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
    private readonly connect: (client: Client) => Promise<void>,
  ) {}

  /** A connected client, exclusively the caller's until `release`. */
  async acquire(): Promise<Client> {
    let client: Client;
    let idleSince: number | undefined;
    const idle = this.idle.pop();
    if (idle) {
      client = idle.client;
      idleSince = idle.since;
    } else if (this.created < this.max) {
      this.created++;
      client = this.newClient();
    } else {
      client = await new Promise<Client>((resolve) => this.waiters.push(resolve));
    }
    try {
      if (!client.closed && idleSince !== undefined && Date.now() - idleSince > PROBE_IDLE_MS) {
        // The server may have dropped an idle session (vsftpd idle_session_timeout): probe it.
        try {
          await client.send("NOOP");
        } catch {
          client.close();
        }
      }
      if (client.closed) await this.connect(client);
      return client;
    } catch (err) {
      this.release(client, true);
      throw err;
    }
  }

  /** Gives a client back; `discard` (or a closed client) closes it and frees its slot for a fresh one. */
  release(client: Client, discard = false): void {
    let next = client;
    if (discard || client.closed) {
      client.close();
      this.all.delete(client);
      next = this.newClient();
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter(next);
    else this.idle.push({ client: next, since: Date.now() });
  }

  closeAll(): void {
    for (const client of this.all) client.close();
  }

  private newClient(): Client {
    const client = new Client(this.timeoutMs);
    this.all.add(client);
    return client;
  }
}
