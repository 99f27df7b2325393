import { spawnSync } from "node:child_process";

/**
 * A python3 that has `cryptography` (the legacy Fernet tool's library): the one on PATH (a pyenv
 * interpreter on some machines) or Debian's /usr/bin/python3 with python3-cryptography.
 */
export const PYTHON: string | undefined = ["python3", "/usr/bin/python3"].find(
  (py) => spawnSync(py, ["-c", "import cryptography.fernet"], { encoding: "utf8" }).status === 0,
);
