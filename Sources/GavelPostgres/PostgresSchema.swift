import Foundation
import GavelStore
import Logging
import PostgresNIO

/// Versioned migrations: a new version appends a migration, never edits an old one. Each runs in
/// its own transaction and is noted in `gavel_migrations`; all of them run under one advisory lock,
/// so two nodes starting at once migrate one after the other.
///
/// The tables mirror SQLite's (`GavelStore/Schema.swift`): BIGINT for milliseconds and money units
/// (`Money.units`, never floats), TEXT for JSON as the exchange wrote it. Cluster tables come on top:
/// `cap_claims`, `nodes`, `signal_epoch`, and the claim columns of `live_state`.
enum PostgresSchema {
    static let migrations: [(version: String, sql: String)] = [
        ("v1-rounds", """
            CREATE TABLE rounds (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                seller_id TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                phase TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                tmax_ms BIGINT NOT NULL,
                duration_us BIGINT NOT NULL,
                winner_id TEXT,
                price BIGINT,
                payout BIGINT,
                lead_json TEXT NOT NULL,
                attribution_json TEXT,
                source TEXT
            );
            CREATE INDEX rounds_by_seller ON rounds(seller_id, created_at_ms);
            CREATE INDEX rounds_by_campaign ON rounds(campaign_id, created_at_ms);
            CREATE INDEX rounds_by_time ON rounds(created_at_ms);
            CREATE INDEX rounds_post_unknown ON rounds(status) WHERE status = 'post_unknown';

            -- One row per buyer considered: its reason code, bid, latency and the tmax it was given.
            CREATE TABLE round_buyers (
                round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                buyer_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                bid BIGINT,
                bid_id TEXT,
                latency_us BIGINT,
                tmax_ms BIGINT,
                detail TEXT,
                destination TEXT,
                buyer_reason TEXT,
                buyer_reason_category TEXT,
                -- The buyer's chance of paying in millionths, as estimated when bidding closed.
                estimate_ppm BIGINT,
                PRIMARY KEY (round_id, buyer_id)
            );
            CREATE INDEX round_buyers_by_buyer ON round_buyers(buyer_id, reason);

            CREATE TABLE post_attempts (
                round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                sequence INTEGER NOT NULL,
                buyer_id TEXT NOT NULL,
                price BIGINT NOT NULL,
                result TEXT NOT NULL,
                latency_us BIGINT NOT NULL,
                reference TEXT,
                detail TEXT,
                buyer_reason TEXT,
                buyer_reason_category TEXT,
                PRIMARY KEY (round_id, sequence)
            );

            -- The books: what the buyer pays, what the seller earns, the margin.
            CREATE TABLE sales (
                round_id TEXT PRIMARY KEY REFERENCES rounds(id),
                kind TEXT NOT NULL,
                seller_id TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                buyer_id TEXT NOT NULL,
                price BIGINT NOT NULL,
                payout BIGINT NOT NULL,
                margin BIGINT NOT NULL,
                sold_at_ms BIGINT NOT NULL,
                contact_hash TEXT
            );
            CREATE INDEX sales_by_buyer ON sales(buyer_id, sold_at_ms);
            CREATE INDEX sales_by_contact ON sales(contact_hash, buyer_id);

            -- Personal data, apart from everything else so it can be purged or locked down alone.
            -- Consent may hold personal data (an email, a signer's name): it lives with the contact.
            CREATE TABLE lead_pii (
                round_id TEXT PRIMARY KEY REFERENCES rounds(id) ON DELETE CASCADE,
                contact_json TEXT NOT NULL,
                consent_json TEXT
            );

            CREATE TABLE cap_counters (
                buyer_id TEXT NOT NULL,
                window_key TEXT NOT NULL,
                count BIGINT NOT NULL,
                spend BIGINT NOT NULL,
                PRIMARY KEY (buyer_id, window_key)
            );

            CREATE TABLE call_events (
                round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                sequence INTEGER NOT NULL,
                type TEXT NOT NULL,
                buyer_id TEXT,
                at_ms BIGINT NOT NULL,
                duration_s BIGINT,
                recording_url TEXT,
                detail TEXT,
                PRIMARY KEY (round_id, sequence)
            );

            -- Final answers by idempotency key (seller, method, path, key), kept 24 h.
            CREATE TABLE idempotency_keys (
                scope TEXT PRIMARY KEY,
                body_hash TEXT NOT NULL,
                status INTEGER NOT NULL,
                response TEXT NOT NULL,
                round_id TEXT,
                created_at_ms BIGINT NOT NULL
            );
            CREATE INDEX idempotency_by_age ON idempotency_keys(created_at_ms);

            -- A post about to be sent, committed before it goes out; removed in the transaction that
            -- records the round. One left over is a post whose answer was never recorded: its round
            -- becomes `post_unknown`. node_id: the node that sent it (start-up resolves its own only).
            CREATE TABLE post_intents (
                round_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                seller_id TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                buyer_id TEXT NOT NULL,
                price BIGINT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                sent_at_ms BIGINT NOT NULL,
                tmax_ms BIGINT NOT NULL,
                lead_json TEXT NOT NULL,
                idempotency_scope TEXT,
                idempotency_hash TEXT,
                cap_increments TEXT NOT NULL,
                contact_hash TEXT,
                node_id TEXT NOT NULL
            );
            CREATE INDEX post_intents_by_age ON post_intents(sent_at_ms);

            -- What is live, written through so that any node can take it over: held ping bids (`held`),
            -- live calls (`call`). Removed when the round is final. claimed_by / claimed_until_ms: the
            -- node posting the held ping, or handling the call's event (a lease).
            CREATE TABLE live_state (
                round_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                snapshot TEXT NOT NULL,
                expires_at_ms BIGINT NOT NULL,
                claimed_by TEXT,
                claimed_until_ms BIGINT
            );
            CREATE INDEX live_state_by_expiry ON live_state(expires_at_ms);

            -- Tracking numbers reserved for landing-page visitors (dynamic number insertion).
            CREATE TABLE dni_sessions (
                number TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                visit_json TEXT NOT NULL,
                expires_at_ms BIGINT NOT NULL
            );

            -- Values the exchange makes for itself and keeps (the contact-hash key).
            CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);

            -- Contacts whose post outcome is unknown: the buyer may have them, so duplicate windows
            -- count them like sales.
            CREATE TABLE unknown_contacts (
                round_id TEXT PRIMARY KEY,
                buyer_id TEXT NOT NULL,
                contact_hash TEXT NOT NULL,
                at_ms BIGINT NOT NULL
            );
            CREATE INDEX unknown_contacts_by_contact ON unknown_contacts(contact_hash, buyer_id);

            -- Round-robin campaigns: whose turn comes next (the highest written wins).
            CREATE TABLE rotations (campaign_id TEXT PRIMARY KEY, next BIGINT NOT NULL);

            -- Buyers that paused themselves in the portal; the row goes when the buyer resumes.
            CREATE TABLE portal_pauses (buyer_id TEXT PRIMARY KEY, paused_at_ms BIGINT NOT NULL);

            -- Recording URLs from the telephony provider's callback, one per call.
            CREATE TABLE call_recordings (round_id TEXT PRIMARY KEY, url TEXT NOT NULL, at_ms BIGINT NOT NULL);
            """),
        ("v2-ledger", """
            -- The books, append-only: every money event is a row that is never updated or deleted.
            -- sale: a round sold, written in the round's own transaction; return: a buyer's return;
            -- adjustment: an operator's correction. at_ms: when it happened; round_at_ms: when its round ran.
            CREATE TABLE ledger (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                entry_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL CHECK (type IN ('sale', 'return', 'adjustment')),
                round_id TEXT,
                at_ms BIGINT NOT NULL,
                round_at_ms BIGINT,
                kind TEXT,
                campaign_id TEXT,
                seller_id TEXT,
                buyer_id TEXT,
                source TEXT,
                revenue BIGINT NOT NULL DEFAULT 0,
                payout BIGINT NOT NULL DEFAULT 0,
                returned BIGINT NOT NULL DEFAULT 0,
                payout_reversed BIGINT NOT NULL DEFAULT 0,
                reason TEXT,
                note TEXT,
                operator_id TEXT
            );
            -- One sale and at most one return per round.
            CREATE UNIQUE INDEX ledger_by_round ON ledger(round_id, type);
            CREATE INDEX ledger_by_time ON ledger(type, at_ms);
            CREATE INDEX ledger_by_buyer ON ledger(buyer_id, type, round_at_ms);
            CREATE FUNCTION gavel_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the ledger is append-only';
            END $$;
            CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION gavel_ledger_append_only();
            CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION gavel_ledger_append_only();
            CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger FOR EACH STATEMENT EXECUTE FUNCTION gavel_ledger_append_only();
            """),
        ("v3-cluster", """
            -- A sale (or a live call) a node is about to make under a buyer's caps: counted with the
            -- committed counters until its round is written (post claims are then deleted: the round's
            -- counters hold them; call claims are marked counted and stay as the call's slot).
            CREATE TABLE cap_claims (
                round_id TEXT NOT NULL,
                buyer_id TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('post', 'call')),
                hour_key TEXT NOT NULL,
                day_key TEXT NOT NULL,
                month_key TEXT NOT NULL,
                price BIGINT NOT NULL,
                contact_hash TEXT,
                counted BOOLEAN NOT NULL DEFAULT false,
                node_id TEXT NOT NULL,
                expires_at_ms BIGINT NOT NULL,
                PRIMARY KEY (round_id, buyer_id)
            );
            CREATE INDEX cap_claims_by_buyer ON cap_claims(buyer_id);
            CREATE INDEX cap_claims_by_expiry ON cap_claims(expires_at_ms);

            -- Nodes by heartbeat.
            CREATE TABLE nodes (node_id TEXT PRIMARY KEY, seen_at_ms BIGINT NOT NULL);

            -- Bumped with every published signal, for the slow poll that backs up LISTEN.
            CREATE TABLE signal_epoch (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), epoch BIGINT NOT NULL);
            INSERT INTO signal_epoch (one, epoch) VALUES (true, 0);

            -- Checks and takes a cap claim in one round trip, under one lock per buyer: 'granted',
            -- 'capped' or 'duplicate'. Counts are committed counters plus every claim in flight.
            CREATE FUNCTION gavel_claim(
                p_round_id TEXT, p_buyer_id TEXT, p_kind TEXT, p_hour_key TEXT, p_day_key TEXT, p_month_key TEXT, p_price BIGINT,
                p_hourly BIGINT, p_daily BIGINT, p_monthly BIGINT, p_budget BIGINT, p_contact_hash TEXT, p_duplicate_days BIGINT,
                p_concurrent BIGINT, p_counts_conversions BOOLEAN, p_expires_at_ms BIGINT, p_node_id TEXT, p_at_ms BIGINT
            ) RETURNS TEXT LANGUAGE plpgsql AS $$
            DECLARE
                v_live BIGINT := 0;
                v_used BIGINT;
                v_spend BIGINT;
            BEGIN
                -- Advisory locks are the database's: the schema is part of the key.
                PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.gavel.cap.' || p_buyer_id));
                -- A claim already taken for this round and buyer (a retry): granted, once.
                IF EXISTS (SELECT 1 FROM cap_claims WHERE round_id = p_round_id AND buyer_id = p_buyer_id) THEN
                    RETURN 'granted';
                END IF;
                IF p_contact_hash IS NOT NULL AND p_duplicate_days > 0 THEN
                    IF EXISTS (SELECT 1 FROM sales WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND sold_at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM unknown_contacts WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM cap_claims WHERE buyer_id = p_buyer_id AND contact_hash = p_contact_hash) THEN
                        RETURN 'duplicate';
                    END IF;
                END IF;
                IF p_counts_conversions THEN
                    SELECT count(*) INTO v_live FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call';
                END IF;
                IF p_hourly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_hour_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND hour_key = p_hour_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_hourly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_daily IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_daily THEN RETURN 'capped'; END IF;
                END IF;
                IF p_monthly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_month_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND month_key = p_month_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_monthly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_budget IS NOT NULL THEN
                    SELECT COALESCE((SELECT spend FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT COALESCE(sum(price), 0) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_spend;
                    IF v_spend + p_price > p_budget THEN RETURN 'capped'; END IF;
                END IF;
                IF p_kind = 'call' AND p_concurrent IS NOT NULL THEN
                    IF (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call') >= p_concurrent THEN
                        RETURN 'capped';
                    END IF;
                END IF;
                INSERT INTO cap_claims (round_id, buyer_id, kind, hour_key, day_key, month_key, price, contact_hash, counted, node_id, expires_at_ms)
                VALUES (p_round_id, p_buyer_id, p_kind, p_hour_key, p_day_key, p_month_key, p_price, p_contact_hash, false, p_node_id,
                        p_expires_at_ms);
                RETURN 'granted';
            END $$;
            """),
        ("v4-running-requests", """
            -- Requests with an Idempotency-Key running now on some node, until until_ms (a dead
            -- node's mark lapses): a repeat on another node gets 409 instead of a second round.
            CREATE TABLE running_requests (scope TEXT PRIMARY KEY, node_id TEXT NOT NULL, until_ms BIGINT NOT NULL);
            """),
        ("v5-claim-one-statement", """
            -- gavel_claim as one autocommit statement: the buyer's lock is held for one round trip.
            CREATE OR REPLACE FUNCTION gavel_claim(
                p_round_id TEXT, p_buyer_id TEXT, p_kind TEXT, p_hour_key TEXT, p_day_key TEXT, p_month_key TEXT, p_price BIGINT,
                p_hourly BIGINT, p_daily BIGINT, p_monthly BIGINT, p_budget BIGINT, p_contact_hash TEXT, p_duplicate_days BIGINT,
                p_concurrent BIGINT, p_counts_conversions BOOLEAN, p_expires_at_ms BIGINT, p_node_id TEXT, p_at_ms BIGINT
            ) RETURNS TEXT LANGUAGE plpgsql AS $$
            DECLARE
                v_live BIGINT := 0;
                v_used BIGINT;
                v_spend BIGINT;
            BEGIN
                -- A statement of its own (no BEGIN/COMMIT around it): the claim's transaction, and
                -- the buyer's lock, last one round trip. It need not wait for its fsync: the post
                -- intent that always follows a granted claim is a synchronous commit and flushes it.
                PERFORM set_config('synchronous_commit', 'off', true);
                -- Advisory locks are the database's: the schema is part of the key.
                PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.gavel.cap.' || p_buyer_id));
                -- A claim already taken for this round and buyer (a retry): granted, once.
                IF EXISTS (SELECT 1 FROM cap_claims WHERE round_id = p_round_id AND buyer_id = p_buyer_id) THEN
                    RETURN 'granted';
                END IF;
                IF p_contact_hash IS NOT NULL AND p_duplicate_days > 0 THEN
                    IF EXISTS (SELECT 1 FROM sales WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND sold_at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM unknown_contacts WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM cap_claims WHERE buyer_id = p_buyer_id AND contact_hash = p_contact_hash) THEN
                        RETURN 'duplicate';
                    END IF;
                END IF;
                IF p_counts_conversions THEN
                    SELECT count(*) INTO v_live FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call';
                END IF;
                IF p_hourly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_hour_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND hour_key = p_hour_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_hourly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_daily IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_daily THEN RETURN 'capped'; END IF;
                END IF;
                IF p_monthly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_month_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND month_key = p_month_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_monthly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_budget IS NOT NULL THEN
                    SELECT COALESCE((SELECT spend FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT COALESCE(sum(price), 0) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_spend;
                    IF v_spend + p_price > p_budget THEN RETURN 'capped'; END IF;
                END IF;
                IF p_kind = 'call' AND p_concurrent IS NOT NULL THEN
                    IF (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call') >= p_concurrent THEN
                        RETURN 'capped';
                    END IF;
                END IF;
                INSERT INTO cap_claims (round_id, buyer_id, kind, hour_key, day_key, month_key, price, contact_hash, counted, node_id, expires_at_ms)
                VALUES (p_round_id, p_buyer_id, p_kind, p_hour_key, p_day_key, p_month_key, p_price, p_contact_hash, false, p_node_id,
                        p_expires_at_ms);
                RETURN 'granted';
            END $$;
            """),
        ("v6-routed-callers", """
            -- Callers routed to a buyer with a duplicate window, billed or not (v5 saw only sales).
            CREATE TABLE routed_callers (
                buyer_id TEXT NOT NULL,
                contact_hash TEXT NOT NULL,
                routed_at_ms BIGINT NOT NULL,
                PRIMARY KEY (buyer_id, contact_hash)
            );
            CREATE OR REPLACE FUNCTION gavel_claim(
                p_round_id TEXT, p_buyer_id TEXT, p_kind TEXT, p_hour_key TEXT, p_day_key TEXT, p_month_key TEXT, p_price BIGINT,
                p_hourly BIGINT, p_daily BIGINT, p_monthly BIGINT, p_budget BIGINT, p_contact_hash TEXT, p_duplicate_days BIGINT,
                p_concurrent BIGINT, p_counts_conversions BOOLEAN, p_expires_at_ms BIGINT, p_node_id TEXT, p_at_ms BIGINT
            ) RETURNS TEXT LANGUAGE plpgsql AS $$
            DECLARE
                v_live BIGINT := 0;
                v_used BIGINT;
                v_spend BIGINT;
            BEGIN
                -- A statement of its own (no BEGIN/COMMIT around it): the claim's transaction, and
                -- the buyer's lock, last one round trip. It need not wait for its fsync: the post
                -- intent that always follows a granted claim is a synchronous commit and flushes it.
                PERFORM set_config('synchronous_commit', 'off', true);
                -- Advisory locks are the database's: the schema is part of the key.
                PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.gavel.cap.' || p_buyer_id));
                -- A claim already taken for this round and buyer (a retry): granted, once.
                IF EXISTS (SELECT 1 FROM cap_claims WHERE round_id = p_round_id AND buyer_id = p_buyer_id) THEN
                    RETURN 'granted';
                END IF;
                IF p_contact_hash IS NOT NULL AND p_duplicate_days > 0 THEN
                    IF EXISTS (SELECT 1 FROM sales WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND sold_at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM unknown_contacts WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND at_ms >= p_at_ms - p_duplicate_days * 86400000)
                       OR EXISTS (SELECT 1 FROM cap_claims WHERE buyer_id = p_buyer_id AND contact_hash = p_contact_hash)
                       OR EXISTS (SELECT 1 FROM routed_callers WHERE contact_hash = p_contact_hash AND buyer_id = p_buyer_id
                                 AND routed_at_ms >= p_at_ms - p_duplicate_days * 86400000) THEN
                        RETURN 'duplicate';
                    END IF;
                END IF;
                IF p_counts_conversions THEN
                    SELECT count(*) INTO v_live FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call';
                END IF;
                IF p_hourly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_hour_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND hour_key = p_hour_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_hourly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_daily IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_daily THEN RETURN 'capped'; END IF;
                END IF;
                IF p_monthly IS NOT NULL THEN
                    SELECT COALESCE((SELECT count FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_month_key), 0)
                         + (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND month_key = p_month_key)
                      INTO v_used;
                    IF v_used + v_live + 1 > p_monthly THEN RETURN 'capped'; END IF;
                END IF;
                IF p_budget IS NOT NULL THEN
                    SELECT COALESCE((SELECT spend FROM cap_counters WHERE buyer_id = p_buyer_id AND window_key = p_day_key), 0)
                         + (SELECT COALESCE(sum(price), 0) FROM cap_claims WHERE buyer_id = p_buyer_id AND NOT counted AND day_key = p_day_key)
                      INTO v_spend;
                    IF v_spend + p_price > p_budget THEN RETURN 'capped'; END IF;
                END IF;
                IF p_kind = 'call' AND p_concurrent IS NOT NULL THEN
                    IF (SELECT count(*) FROM cap_claims WHERE buyer_id = p_buyer_id AND kind = 'call') >= p_concurrent THEN
                        RETURN 'capped';
                    END IF;
                END IF;
                INSERT INTO cap_claims (round_id, buyer_id, kind, hour_key, day_key, month_key, price, contact_hash, counted, node_id, expires_at_ms)
                VALUES (p_round_id, p_buyer_id, p_kind, p_hour_key, p_day_key, p_month_key, p_price, p_contact_hash, false, p_node_id,
                        p_expires_at_ms);
                -- A caller is remembered at routing, billed or not (as on one node): not routed to this
                -- buyer again within its window, whichever node the next call reaches.
                IF p_kind = 'call' AND p_contact_hash IS NOT NULL AND p_duplicate_days > 0 THEN
                    INSERT INTO routed_callers (buyer_id, contact_hash, routed_at_ms) VALUES (p_buyer_id, p_contact_hash, p_at_ms)
                    ON CONFLICT (buyer_id, contact_hash) DO UPDATE SET routed_at_ms = GREATEST(routed_callers.routed_at_ms, EXCLUDED.routed_at_ms);
                END IF;
                RETURN 'granted';
            END $$;
            """),
    ]

    /// Creates the schema if asked to, then applies every migration not yet applied, in order,
    /// each in its own transaction, under a session advisory lock of the schema.
    static func migrate(on connection: PostgresConnection, schema: String?, logger: Logger) async throws {
        // Migrations may wait for another node's (and take longer than a round's statement).
        try await connection.run("SET lock_timeout = '120s'")
        try await connection.run("SET statement_timeout = '300s'")
        let lockKey = "gavel.migrate." + (schema ?? "")
        try await connection.run("SELECT pg_advisory_lock(hashtext(\(lockKey)))")
        do {
            if let schema { try await connection.run(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \"\(schema)\"")) }
            try await connection.run("""
                CREATE TABLE IF NOT EXISTS gavel_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """)
            let applied = Set(try await connection.rows("SELECT version FROM gavel_migrations").map { try $0.decode(String.self) })
            for migration in migrations where !applied.contains(migration.version) {
                try await connection.inTransaction(logger: logger) {
                    for statement in statements(of: migration.sql) { try await connection.run(PostgresQuery(unsafeSQL: statement)) }
                    try await connection.run("INSERT INTO gavel_migrations (version) VALUES (\(migration.version))")
                }
                logger.debug("migration applied", metadata: ["version": "\(migration.version)"])
            }
        } catch {
            try? await connection.run("SELECT pg_advisory_unlock(hashtext(\(lockKey)))")
            try? await connection.run("RESET lock_timeout")
            try? await connection.run("RESET statement_timeout")
            throw error
        }
        try await connection.run("SELECT pg_advisory_unlock(hashtext(\(lockKey)))")
        try await connection.run("RESET lock_timeout")
        try await connection.run("RESET statement_timeout")
    }
}

extension PostgresSchema {
    /// A migration's statements, one by one (the extended protocol takes one at a time): split at
    /// each `;` outside quotes, `$$` bodies and `--` comments.
    static func statements(of sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var inQuote = false, inDollar = false, inComment = false
        var characters = Array(sql)[...]
        while let character = characters.popFirst() {
            if inComment {
                if character == "\n" { inComment = false }
                continue
            }
            if !inQuote && !inDollar && character == "-" && characters.first == "-" {
                inComment = true
                continue
            }
            if !inQuote && character == "$" && characters.first == "$" {
                inDollar.toggle()
                current.append(character)
                current.append(characters.removeFirst())
                continue
            }
            if !inDollar && character == "'" { inQuote.toggle() }
            if !inQuote && !inDollar && character == ";" {
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = ""
                continue
            }
            current.append(character)
        }
        let last = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty { statements.append(last) }
        return statements
    }
}

extension PostgresStore {
    func migrate() async throws(StoreError) {
        let schema = configuration.schema
        let logger = logger
        // Connecting and waiting for another node's migration may take a while: its own deadline.
        try await withConnection("migrate", timeout: .seconds(330), failure: { .migrate($0) }) { connection in
            try await PostgresSchema.migrate(on: connection, schema: schema, logger: logger)
        }
    }
}
