-- The client side of `make loadtest`: one wrk script for every scenario.
--
--   wrk -t T -c C -d D -s scenarios.lua URL -- SCENARIO TOKENS_FILE COUPON_ID PRODUCT_ID FIRST_USER
--
-- TOKENS_FILE holds one bearer token per line; line n is the token of user n. Every
-- thread walks its own stride of users, starting at FIRST_USER, so no two requests in
-- flight name the same user and no user is issued the coupon twice in one run.
-- `done` prints one line, `LOADTEST {json}`, that the driver reads.

local threads = {}
local next_thread = 0

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

function init(args)
   scenario = args[1]
   coupon = args[3]
   product = args[4]
   local first = tonumber(args[5])
   tokens = {}
   for line in io.lines(args[2]) do
      tokens[#tokens + 1] = line
   end
   cursor = first + thread_index
   sent = 0
   paid = 0
   unpaid = {}
end

-- wrk tells no thread how many threads there are: the driver passes it in the
-- environment.
thread_count = tonumber(os.getenv("LOADTEST_THREADS") or "1")

local function next_user()
   local user = cursor
   cursor = cursor + thread_count
   if cursor > #tokens then
      cursor = 1 + thread_index
   end
   return user
end

local json = { ["Content-Type"] = "application/json" }

local function with_token(user, extra)
   local headers = { ["Authorization"] = "Bearer " .. tokens[user] }
   for name, value in pairs(extra or {}) do
      headers[name] = value
   end
   return headers
end

function request()
   sent = sent + 1
   if scenario == "products" then
      return wrk.format("GET", "/api/v1/products?limit=20")
   elseif scenario == "balance" then
      local user = next_user()
      return wrk.format("GET", "/api/v1/points/" .. user, with_token(user))
   elseif scenario == "charge" then
      local user = next_user()
      return wrk.format("POST", "/api/v1/points/" .. user, with_token(user, json), '{"amount":1}')
   elseif scenario == "keyed-charge" then
      local user = next_user()
      local key = { ["Content-Type"] = "application/json",
                    ["Idempotency-Key"] = "loadtest-" .. thread_index .. "-" .. sent }
      return wrk.format("POST", "/api/v1/points/" .. user, with_token(user, key), '{"amount":1}')
   elseif scenario == "coupon" then
      local user = next_user()
      return wrk.format("POST", "/api/v1/coupons/" .. coupon .. "/issue", with_token(user, json),
                        '{"userId":' .. user .. '}')
   elseif scenario == "order-payment" then
      local due = table.remove(unpaid)
      if due then
         return wrk.format("POST", "/api/v1/payments", with_token(due.user, json),
                           '{"userId":' .. due.user .. ',"orderId":' .. due.order .. '}')
      end
      local user = next_user()
      return wrk.format("POST", "/api/v1/orders", with_token(user, json),
                        '{"userId":' .. user .. ',"items":[{"productId":' .. product .. ',"quantity":1}]}')
   end
   error("unknown scenario " .. tostring(scenario))
end

if os.getenv("LOADTEST_SCENARIO") == "order-payment" then
   -- Only this scenario reads bodies: an order's reply names the order to pay next.
   function response(status, headers, body)
      if status ~= 201 then
         return
      end
      if body:find('"paymentId"', 1, true) then
         paid = paid + 1
      else
         local order = body:match('"orderId":(%d+)')
         local user = body:match('"userId":(%d+)')
         if order and user then
            table.insert(unpaid, { order = order, user = tonumber(user) })
         end
      end
   end
end

function done(summary, latency, requests)
   local pairs_paid = 0
   for _, thread in ipairs(threads) do
      pairs_paid = pairs_paid + (thread:get("paid") or 0)
   end
   local errors = summary.errors
   io.write(string.format(
      'LOADTEST {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
         .. '"p50_us":%d,"p99_us":%d,"max_us":%d,"paid":%d}\n',
      summary.requests, summary.duration, errors.status,
      errors.connect + errors.read + errors.write + errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, pairs_paid))
end
