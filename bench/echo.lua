-- wrk script for manual runs / profiling: POST the echo body.
-- wrk -t1 -c16 -d20s -s bench/echo.lua http://127.0.0.1:PORT/echo/run
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "hello hayhooks"}'
