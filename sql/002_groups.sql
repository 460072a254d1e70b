-- ttserver schema, version 2: indexes for groups (B-GRP). Never edit once released.

-- 5/6 (B-GRP-11) counts a group's messages after the reader's cursor that the reader did not
-- send. With from_id in the index that count reads the index only, never the message rows.
-- Same name and leading columns as before, so every other use is unchanged.
DROP INDEX group_messages_by_group;
CREATE INDEX group_messages_by_group ON group_messages (group_id, id, from_id);

-- Every stored group message un-hides the group for the members who hid it (B-RC-4, B-GRP-8).
-- This partial index holds only hidden rows, so that update visits those alone instead of
-- every member of the group. Cursor updates do not touch it (hidden does not change).
CREATE INDEX group_members_hidden ON group_members (group_id) WHERE hidden = 1;
