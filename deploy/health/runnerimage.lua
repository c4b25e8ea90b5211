-- Argo CD health check for runners.ade.dev/RunnerImage, with the kstatus rules the operator's
-- status follows (sigs.k8s.io/cli-utils/pkg/kstatus), in kstatus's order:
--   deletionTimestamp set                  -> Progressing (kstatus: Terminating)
--   spec.suspend true                      -> Suspended   (kstatus: InProgress, Ready=False)
--   no status yet                          -> Progressing (the operator has not seen it)
--   status.observedGeneration behind       -> Progressing (kstatus: InProgress)
--   Stalled=True                           -> Degraded    (kstatus: Failed)
--   Reconciling=True                       -> Progressing (kstatus: InProgress)
--   Ready=True                             -> Healthy     (kstatus: Current)
--   Ready=False or Unknown                 -> Progressing (kstatus: InProgress)
--   no Ready condition                     -> Progressing
-- Installed as resource.customizations.health.runners.ade.dev_RunnerImage in argocd-cm
-- (deploy/health/argocd-cm.yaml holds this file verbatim under that key).
local hs = {}

local function condition(conditions, type_)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return c.type .. " is " .. tostring(c.status)
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion"
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is suspended (spec.suspend is true)"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Generation " .. tostring(generation) .. " is not observed yet (observed: "
    .. tostring(status.observedGeneration) .. ")"
  return hs
end

local conditions = status.conditions

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil then
  hs.status = "Progressing"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
