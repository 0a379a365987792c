import GRDB

/// Versioned migrations: a new version appends a migration, never edits an old one.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-rounds") { db in
            try db.execute(sql: """
                CREATE TABLE rounds (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    seller_id TEXT NOT NULL,
                    campaign_id TEXT NOT NULL,
                    phase TEXT NOT NULL,
                    status TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    tmax_ms INTEGER NOT NULL,
                    duration_us INTEGER NOT NULL,
                    winner_id TEXT,
                    price INTEGER,
                    payout INTEGER,
                    lead_json TEXT NOT NULL
                );
                CREATE INDEX rounds_by_seller ON rounds(seller_id, created_at_ms);
                CREATE INDEX rounds_by_campaign ON rounds(campaign_id, created_at_ms);

                -- One row per buyer considered: its reason code, bid, latency and the tmax it was given.
                CREATE TABLE round_buyers (
                    round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    buyer_id TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    bid INTEGER,
                    bid_id TEXT,
                    latency_us INTEGER,
                    tmax_ms INTEGER,
                    detail TEXT,
                    destination TEXT,
                    PRIMARY KEY (round_id, buyer_id)
                ) WITHOUT ROWID;
                CREATE INDEX round_buyers_by_buyer ON round_buyers(buyer_id, reason);

                CREATE TABLE post_attempts (
                    round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                    sequence INTEGER NOT NULL,
                    buyer_id TEXT NOT NULL,
                    price INTEGER NOT NULL,
                    result TEXT NOT NULL,
                    latency_us INTEGER NOT NULL,
                    reference TEXT,
                    detail TEXT,
                    PRIMARY KEY (round_id, sequence)
                ) WITHOUT ROWID;

                -- The books: what the buyer pays, what the seller earns, the margin.
                CREATE TABLE sales (
                    round_id TEXT PRIMARY KEY REFERENCES rounds(id),
                    kind TEXT NOT NULL,
                    seller_id TEXT NOT NULL,
                    campaign_id TEXT NOT NULL,
                    buyer_id TEXT NOT NULL,
                    price INTEGER NOT NULL,
                    payout INTEGER NOT NULL,
                    margin INTEGER NOT NULL,
                    sold_at_ms INTEGER NOT NULL,
                    contact_hash TEXT
                );
                CREATE INDEX sales_by_buyer ON sales(buyer_id, sold_at_ms);
                CREATE INDEX sales_by_contact ON sales(contact_hash, buyer_id);

                -- Personal data, apart from everything else so it can be purged or locked down alone.
                CREATE TABLE lead_pii (
                    round_id TEXT PRIMARY KEY REFERENCES rounds(id) ON DELETE CASCADE,
                    contact_json TEXT NOT NULL
                );

                CREATE TABLE cap_counters (
                    buyer_id TEXT NOT NULL,
                    window TEXT NOT NULL,
                    count INTEGER NOT NULL,
                    spend INTEGER NOT NULL,
                    PRIMARY KEY (buyer_id, window)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v2-calls") { db in
            try db.execute(sql: """
                ALTER TABLE rounds ADD COLUMN attribution_json TEXT;

                CREATE TABLE call_events (
                    round_id TEXT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
                    sequence INTEGER NOT NULL,
                    type TEXT NOT NULL,
                    buyer_id TEXT,
                    at_ms INTEGER NOT NULL,
                    duration_s INTEGER,
                    recording_url TEXT,
                    detail TEXT,
                    PRIMARY KEY (round_id, sequence)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3-consent") { db in
            // Consent may hold personal data (an email, a signer's name): it lives with the contact.
            try db.execute(sql: "ALTER TABLE lead_pii ADD COLUMN consent_json TEXT")
        }
        migrator.registerMigration("v4-idempotency") { db in
            try db.execute(sql: """
                -- Final answers by idempotency key (seller, method, path, key), kept 24 h.
                CREATE TABLE idempotency_keys (
                    scope TEXT PRIMARY KEY,
                    body_hash TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    response TEXT NOT NULL,
                    round_id TEXT,
                    created_at_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX idempotency_by_age ON idempotency_keys(created_at_ms);

                -- A post about to be sent, written (and committed) before it goes out; removed in the
                -- transaction that records the round. One left at start-up is a post whose answer
                -- was never recorded: its round becomes `post_unknown`.
                CREATE TABLE post_intents (
                    round_id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    seller_id TEXT NOT NULL,
                    campaign_id TEXT NOT NULL,
                    buyer_id TEXT NOT NULL,
                    price INTEGER NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    sent_at_ms INTEGER NOT NULL,
                    tmax_ms INTEGER NOT NULL,
                    lead_json TEXT NOT NULL,
                    idempotency_scope TEXT,
                    idempotency_hash TEXT,
                    cap_increments TEXT NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v5-live-state") { db in
            try db.execute(sql: """
                -- What is live in memory, written through so that a restart restores it: held ping bids
                -- (`held`), live calls with their slots (`call`). Removed when the round is final.
                CREATE TABLE live_state (
                    round_id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    snapshot TEXT NOT NULL,
                    expires_at_ms INTEGER NOT NULL
                ) WITHOUT ROWID;

                -- Tracking numbers reserved for landing-page visitors (dynamic number insertion).
                CREATE TABLE dni_sessions (
                    number TEXT PRIMARY KEY,
                    session_id TEXT NOT NULL,
                    campaign_id TEXT NOT NULL,
                    visit_json TEXT NOT NULL,
                    expires_at_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v6-settings") { db in
            // Values the exchange makes for itself and keeps (the contact-hash key).
            try db.execute(sql: "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        }
        migrator.registerMigration("v7-unknown-contacts") { db in
            try db.execute(sql: """
                ALTER TABLE post_intents ADD COLUMN contact_hash TEXT;
                -- Contacts whose post outcome is unknown: the buyer may have them, so duplicate windows
                -- count them like sales.
                CREATE TABLE unknown_contacts (
                    round_id TEXT PRIMARY KEY,
                    buyer_id TEXT NOT NULL,
                    contact_hash TEXT NOT NULL,
                    at_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v9-rotations") { db in
            // Round-robin campaigns: whose turn comes next, written with each round, so the
            // rotation goes on after a restart.
            try db.execute(sql: "CREATE TABLE rotations (campaign_id TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID")
        }
        migrator.registerMigration("v8-buyer-reason") { db in
            try db.execute(sql: """
                -- The buyer's own words when it declined or rejected (templates map them to a category).
                ALTER TABLE round_buyers ADD COLUMN buyer_reason TEXT;
                ALTER TABLE round_buyers ADD COLUMN buyer_reason_category TEXT;
                ALTER TABLE post_attempts ADD COLUMN buyer_reason TEXT;
                ALTER TABLE post_attempts ADD COLUMN buyer_reason_category TEXT;
                -- The seller's traffic source, when it sent one.
                ALTER TABLE rounds ADD COLUMN source TEXT;
                """)
        }
        migrator.registerMigration("v10-estimates") { db in
            // Each buyer's chance of paying (post accepted, call converted) in millionths, as
            // estimated when the round's bidding closed; null for a buyer that took no part.
            try db.execute(sql: "ALTER TABLE round_buyers ADD COLUMN estimate_ppm INTEGER")
        }
        migrator.registerMigration("v12-portal-pauses") { db in
            try db.execute(sql: """
                -- Buyers that paused themselves in the portal; the row goes when the buyer resumes.
                CREATE TABLE portal_pauses (buyer_id TEXT PRIMARY KEY, paused_at_ms INTEGER NOT NULL) WITHOUT ROWID;
                -- The dashboard reads recent rounds and a day's rounds by time.
                CREATE INDEX IF NOT EXISTS rounds_by_time ON rounds(created_at_ms);
                """)
        }
        migrator.registerMigration("v13-ledger") { db in
            try db.execute(sql: """
                -- The books, append-only: every money event is a row that is never updated or deleted.
                -- sale: a round sold (revenue: the buyer's price; payout: the seller's), written in the
                -- round's own transaction; return: a buyer's return (returned: credited to the buyer;
                -- payout_reversed: taken back from the seller per the campaign's return policy);
                -- adjustment: an operator's correction of revenue or payout, with a note.
                -- at_ms: when it happened; round_at_ms: when its round ran (reports count sales there).
                CREATE TABLE ledger (
                    seq INTEGER PRIMARY KEY,
                    entry_id TEXT NOT NULL UNIQUE,
                    type TEXT NOT NULL CHECK (type IN ('sale', 'return', 'adjustment')),
                    round_id TEXT,
                    at_ms INTEGER NOT NULL,
                    round_at_ms INTEGER,
                    kind TEXT,
                    campaign_id TEXT,
                    seller_id TEXT,
                    buyer_id TEXT,
                    source TEXT,
                    revenue INTEGER NOT NULL DEFAULT 0,
                    payout INTEGER NOT NULL DEFAULT 0,
                    returned INTEGER NOT NULL DEFAULT 0,
                    payout_reversed INTEGER NOT NULL DEFAULT 0,
                    reason TEXT,
                    note TEXT,
                    operator_id TEXT
                );
                -- One sale and at most one return per round.
                CREATE UNIQUE INDEX ledger_by_round ON ledger(round_id, type);
                CREATE INDEX ledger_by_time ON ledger(type, at_ms);
                CREATE INDEX ledger_by_buyer ON ledger(buyer_id, type, round_at_ms);
                CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                -- Reports read rounds by the time they ran.
                CREATE INDEX IF NOT EXISTS rounds_by_time ON rounds(created_at_ms);
                -- Sales made before the ledger existed.
                INSERT INTO ledger (entry_id, type, round_id, at_ms, round_at_ms, kind, campaign_id, seller_id, buyer_id, source, revenue, payout)
                SELECT 'sale:' || sales.round_id, 'sale', sales.round_id, sales.sold_at_ms, sales.sold_at_ms, sales.kind, sales.campaign_id,
                       sales.seller_id, sales.buyer_id, COALESCE(rounds.source, json_extract(rounds.attribution_json, '$.source')),
                       sales.price, sales.payout
                FROM sales LEFT JOIN rounds ON rounds.id = sales.round_id ORDER BY sales.sold_at_ms;
                """)
        }
        migrator.registerMigration("v14-call-recordings") { db in
            // Recording URLs from the telephony provider's callback, one per call.
            try db.execute(sql: "CREATE TABLE call_recordings (round_id TEXT PRIMARY KEY, url TEXT NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID")
        }
        migrator.registerMigration("v15-write-volume") { db in
            // Every commit writes each page it dirtied whole into the WAL (~38 pages per sold round
            // at 500 rounds/s, LoadTests S5). These indexes served no query (every read goes by
            // time, round or seller: EXPLAIN QUERY PLAN), and round_buyers_by_buyer alone dirtied
            // one page per buyer of every round. Sales get the index their one read needs: the
            // duplicate window loaded at start-up by sale time (it scanned the table).
            try db.execute(sql: """
                DROP INDEX IF EXISTS round_buyers_by_buyer;
                DROP INDEX IF EXISTS rounds_by_campaign;
                DROP INDEX IF EXISTS sales_by_contact;
                DROP INDEX IF EXISTS sales_by_buyer;
                CREATE INDEX IF NOT EXISTS sales_by_time ON sales(sold_at_ms);
                """)
        }
        return migrator
    }
}
