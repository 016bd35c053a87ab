-- A chat message (a card) belongs to at most one question: a worker re-stashing its own question
-- cannot point it at another question's card (and so edit or disarm that card when answered).
CREATE UNIQUE INDEX pending_questions_one_card ON pending_questions (connection_id, message_channel_id, message_id)
    WHERE message_id IS NOT NULL;
