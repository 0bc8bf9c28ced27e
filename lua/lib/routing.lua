--[[ lib/routing: whether a processor may run a task, by the labels the task requires of it.
  The twin of satisfies in luasched/core/kinds.py: the two agree on every input, type mismatches
  included (tests/scripts/test_requires_lua.py runs both on the same cases). No script uses it yet.
  Includes: (none)

  A processor's labels are the "l" object of its kind's definition (kinds HASH), decoded: label
  name -> a string or a number. A task's requirement is its encoded requires, decoded: a list of
  {label, op, value}, sorted by label, op one of ==, !=, >=, >, <=, < or exists (value null).
  cjson reads every JSON number as a double; labels and values are within -2^53..2^53, so an
  integer is exact and 80 and 80.0 are the same number, as in Python.
]]

-- Whether labels meet every condition of conds (none: they do). exists: the label is present.
-- ==: present, of the same type (a number never equals a string) and equal. !=: the opposite
-- of ==, so an absent label matches. >=, >, <=, <: present, and the label and the value are
-- both numbers, compared as numbers; a string on either side does not match (Lua raises an
-- error comparing a string with a number: the types are checked first). An unknown op
-- matches nothing.
local function requires_met(labels, conds)
  for _, cond in ipairs(conds) do
    local have, op, want = labels[cond[1]], cond[2], cond[3]
    local ok = false
    if op == 'exists' then
      ok = have ~= nil
    elseif op == '==' or op == '!=' then
      local same = have ~= nil and type(have) == type(want) and have == want
      ok = same == (op == '==')
    elseif type(have) == 'number' and type(want) == 'number' then
      if op == '>=' then
        ok = have >= want
      elseif op == '>' then
        ok = have > want
      elseif op == '<=' then
        ok = have <= want
      elseif op == '<' then
        ok = have < want
      end
    end
    if not ok then
      return false
    end
  end
  return true
end
