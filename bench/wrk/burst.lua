-- wrk script: post.lua with a bound on the number of answers.
--
--   wrk ... -s bench/wrk/burst.lua URL -- PATH AUTHORIZATION BODIES_FILE LIMIT
--
-- Exactly as post.lua (one form body per line, round-robin, answers counted by status and
-- OAuth error code, one "RESULT {json}" line at the end), but each thread stops once it has
-- LIMIT answers (with -t1: LIMIT requests in all; answers still in flight are not counted).
-- wrk itself would then sleep out its -d: the script sends it SIGINT, which wrk handles as
-- the end of the run, so the RESULT's duration is the burst's. Give -d as an upper bound.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "post.lua")

local post_init, post_response = init, response

function init(args)
  post_init(args)
  limit = tonumber(args[4]) or 0
  answered = 0
end

function response(status, response_headers, body)
  post_response(status, response_headers, body)
  answered = answered + 1
  if limit > 0 and answered >= limit then
    wrk.thread:stop()
    if not signalled then
      signalled = true
      -- system() ignores SIGINT in wrk while it waits, so signal from a background shell
      os.execute("(sleep 0.02; kill -INT $PPID) &")
    end
  end
end
