-- The ops console's users and their sessions. A password is kept only as its argon2id hash, a
-- session only as the SHA-256 of its random token: a copy of this table logs nobody in.
CREATE TABLE finsync.console_users (
    username       text        PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash  text        NOT NULL,   -- argon2id, parameters and salt included
    role           text        NOT NULL CHECK (role IN ('viewer', 'operator')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled       boolean     NOT NULL DEFAULT false,
    last_login     timestamptz,
    failed_logins  integer     NOT NULL DEFAULT 0,  -- in a row, since the last success or lock
    locked_until   timestamptz                      -- set after too many failures in a row
);

CREATE TABLE finsync.console_sessions (
    token_sha256   bytea       PRIMARY KEY,
    username       text        NOT NULL
                   REFERENCES finsync.console_users (username) ON DELETE CASCADE,
    csrf_token     text        NOT NULL,  -- sent back in every form and htmx request
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now()  -- idle expiry counts from here
);
CREATE INDEX console_sessions_user ON finsync.console_sessions (username);
CREATE INDEX console_sessions_last_seen ON finsync.console_sessions (last_seen);
