-- SQLite's migration 4 settled tasks an old crash left final but unsettled; this store
-- always finished and settled in one transaction. Kept so version numbers match SQLite's.
SELECT 1;
