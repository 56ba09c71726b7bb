-- Argo CD health check for the eight kinds of cairn.dev/v1alpha1 (the same script for each).
-- Argo CD runs it with gopher-lua (Lua 5.1) and only its base, table and package libraries: no
-- string library here. Healthy needs Accepted, Programmed and Ready on a gateway; Accepted and
-- ResolvedRefs on the other kinds (and Ready wherever the operator reports it).
local gateways = {AIGateway = true, MCPGateway = true, AgentGateway = true}
local required = {"Accepted", "ResolvedRefs"}
if gateways[obj.kind] then
  required = {"Accepted", "Programmed", "Ready"}
end
local hs = {status = "Progressing", message = "Waiting for the Cairn operator to report status"}

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  return hs
end

local generation = obj.metadata.generation
local function current(observed)
  return generation == nil or observed == nil or observed >= generation
end
if not current(status.observedGeneration) then
  hs.message = "Waiting for the Cairn operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, c in ipairs(status.conditions) do
  if c.type ~= nil then
    conditions[c.type] = c
  end
end
local function describe(c)
  local text = c.type
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end
for _, c in pairs(conditions) do
  if not current(c.observedGeneration) then
    hs.message = "Waiting for the Cairn operator to observe generation " .. tostring(generation)
    return hs
  end
end

local function first_false(types)
  for _, t in ipairs(types) do
    local c = conditions[t]
    if c ~= nil and c.status == "False" then
      return c
    end
  end
  return nil
end

-- What the user must fix first: a spec that is not accepted or a reference that is missing (a
-- gateway then also reports Stalled, whose message only points back here).
local invalid = first_false({"Accepted", "ResolvedRefs"})
if invalid ~= nil then
  hs.status = "Degraded"
  hs.message = describe(invalid)
  return hs
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
local failing = first_false({"Programmed", "Ready"})
if failing ~= nil then
  hs.status = "Degraded"
  hs.message = describe(failing)
  return hs
end
for _, t in ipairs(required) do
  local c = conditions[t]
  if c == nil or c.status ~= "True" then
    hs.message = "Waiting for condition " .. t
    return hs
  end
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status ~= "True" then
  hs.message = "Waiting for condition Ready"
  return hs
end
hs.status = "Healthy"
hs.message = describe(conditions[required[#required]])
return hs
