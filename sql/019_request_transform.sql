-- walhook 019: request transforms and token claims (SPEC §11).
-- request_transform (NULL: the standard request of SPEC §4) shapes a
-- trigger's request with Kriti templates: {"method", "url", "query_params",
-- "headers", "body", "content_type"}, every member optional. token_claims is
-- a Kriti template (an object, or a string holding the template's text)
-- whose members are added to the X-SC-Token's claims. What only walhook can
-- judge (the templates parse, no reserved header) is checked when triggers
-- load: a trigger that fails it is inactive with a last_error. What the
-- database can say, it says here. Safe to apply twice.
ALTER TABLE @schema@.triggers ADD COLUMN IF NOT EXISTS request_transform jsonb;
ALTER TABLE @schema@.triggers ADD COLUMN IF NOT EXISTS token_claims jsonb;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conrelid = '@schema@.triggers'::regclass
                    AND conname = 'triggers_request_transform_check') THEN
    ALTER TABLE @schema@.triggers ADD CONSTRAINT triggers_request_transform_check CHECK (
      request_transform IS NULL OR (
        jsonb_typeof(request_transform) = 'object'
        -- only the members SPEC §11 knows
        AND request_transform - ARRAY['method', 'url', 'query_params', 'headers', 'body',
                                      'content_type'] = '{}'::jsonb
        AND (NOT request_transform ? 'method'
             OR request_transform -> 'method' IN ('"POST"'::jsonb, '"PUT"'::jsonb,
                                                  '"PATCH"'::jsonb, '"DELETE"'::jsonb,
                                                  '"GET"'::jsonb))
        AND (NOT request_transform ? 'url'
             OR jsonb_typeof(request_transform -> 'url') = 'string')
        AND (NOT request_transform ? 'query_params'
             OR (jsonb_typeof(request_transform -> 'query_params') = 'object'
                 AND NOT jsonb_path_exists(request_transform,
                                           'strict $.query_params.* ? (@.type() != "string")')))
        AND (NOT request_transform ? 'headers'
             OR (jsonb_typeof(request_transform -> 'headers') = 'object'
                 AND NOT jsonb_path_exists(request_transform,
                                           'strict $.headers.* ? (@.type() != "string")')))
        AND (NOT request_transform ? 'content_type'
             OR request_transform -> 'content_type' IN ('"application/json"'::jsonb,
                  '"application/x-www-form-urlencoded"'::jsonb, '"text/plain"'::jsonb))));
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conrelid = '@schema@.triggers'::regclass
                    AND conname = 'triggers_token_claims_check') THEN
    ALTER TABLE @schema@.triggers ADD CONSTRAINT triggers_token_claims_check CHECK (
      token_claims IS NULL OR jsonb_typeof(token_claims) IN ('object', 'string'));
  END IF;
END $$;
