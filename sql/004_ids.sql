-- ttserver schema, version 4: one id space for users and groups (B-GRP-20). Never edit once
-- released.

-- Before this version users and groups each counted from 1, so group 1 and user 1 could share
-- an id, and a client that looks a session id up among its contacts first mixed the two up.
-- Every group whose id is also a user id moves to a fresh id above every user and group id,
-- in group id order; its members (with their read cursors and hidden flags) and its messages
-- move with it. Clients see such a group under its new id from now on.
CREATE TABLE id_renumber (
    old INTEGER PRIMARY KEY,
    new INTEGER NOT NULL UNIQUE
);
INSERT INTO id_renumber (old, new)
    SELECT g.id,
           max(IFNULL((SELECT max(id) FROM users), 0), IFNULL((SELECT max(id) FROM groups), 0))
               + row_number() OVER (ORDER BY g.id)
    FROM groups g
    WHERE g.id IN (SELECT id FROM users);

-- Foreign keys are on: the new group row first, then its children, then the old row.
INSERT INTO groups (id, type, name, avatar, creator, created, updated, last_msg_id, deleted)
    SELECT r.new, g.type, g.name, g.avatar, g.creator, g.created, g.updated, g.last_msg_id,
           g.deleted
    FROM groups g JOIN id_renumber r ON r.old = g.id;
UPDATE group_members
    SET group_id = (SELECT r.new FROM id_renumber r WHERE r.old = group_members.group_id)
    WHERE group_id IN (SELECT old FROM id_renumber);
UPDATE group_messages
    SET group_id = (SELECT r.new FROM id_renumber r WHERE r.old = group_messages.group_id)
    WHERE group_id IN (SELECT old FROM id_renumber);
DELETE FROM groups WHERE id IN (SELECT old FROM id_renumber);
DROP TABLE id_renumber;

-- The one sequence: `last` = the highest id handed out to a user or a group. A new user or
-- group takes last + 1 inside its own transaction (src/store/mod.rs `next_id`), so an id is
-- never given twice, and never reused (deleted normal groups keep their rows).
CREATE TABLE id_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO id_seq (id, last)
    SELECT 1, max(IFNULL((SELECT max(id) FROM users), 0), IFNULL((SELECT max(id) FROM groups), 0));
