-- The balance check looks up each inserted entry by its primary key instead of aggregating a
-- join, whose plan degrades to a scan of every journal line as the ledger grows.
CREATE OR REPLACE FUNCTION erp.check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry text;
    difference numeric;
BEGIN
    FOR entry IN SELECT DISTINCT entry_id FROM new_lines LOOP
        SELECT sum(debit) - sum(credit) INTO difference
          FROM erp.journal_lines WHERE entry_id = entry;
        IF difference <> 0 THEN
            RAISE EXCEPTION 'journal entry % is not balanced (debits - credits = %)', entry, difference
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
