// Implements the opcode groups of the pickle machine (see pickle_machine.h): control, numbers,
// strings and bytes, containers and their filling, the memo, and objects.
#include "model/weights/pickle_machine.h"

namespace vitslim::model::pickle_detail {

// Each opcode group returns whether it knew `op`.
bool Machine::control_op(uint8_t op) {
  switch (op) {
    case 0x80:  // PROTO
      take(1);
      return true;
    case 0x95:  // FRAME (protocol 4+): length only
      take(8);
      return true;
    case '(':  // MARK
      marks_.push_back(stack_.size());
      return true;
    case '0':  // POP
      pop();
      return true;
    case '1':  // POP_MARK
      pop_to_mark();
      return true;
    case '2':  // DUP
      stack_.push_back(top());
      return true;
    default:
      return false;
  }
}

bool Machine::number_op(uint8_t op) {
  switch (op) {
    case 'N':
      stack_.push_back(make(Kind::None));
      return true;
    case 0x88:
    case 0x89: {  // NEWTRUE / NEWFALSE
      auto v = make(Kind::Bool);
      v->b = op == 0x88;
      stack_.push_back(v);
      return true;
    }
    case 'J':  // BININT
      stack_.push_back(make_int(read_le<int32_t>()));
      return true;
    case 'K':  // BININT1
      stack_.push_back(make_int(read_le<uint8_t>()));
      return true;
    case 'M':  // BININT2
      stack_.push_back(make_int(read_le<uint16_t>()));
      return true;
    case 0x8a:  // LONG1
      stack_.push_back(make_int(read_long1()));
      return true;
    case 'I':  // INT (text)
      stack_.push_back(read_text_int());
      return true;
    case 'G':  // BINFLOAT (big-endian)
      stack_.push_back(read_binfloat());
      return true;
    default:
      return false;
  }
}

int64_t Machine::read_long1() {
  const size_t n = read_le<uint8_t>();
  if (n > 8) fail("integer wider than 64 bits");
  const uint8_t* bytes = take(n);
  uint64_t u = 0;
  for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(bytes[k]) << (8 * k);
  if (n > 0 && n < 8 && (bytes[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
  return static_cast<int64_t>(u);
}

PickleValue Machine::read_text_int() {
  std::string line = read_line();
  if (line == "00" || line == "01") {
    auto v = make(Kind::Bool);
    v->b = line == "01";
    return v;
  }
  char* endp = nullptr;
  long long v = std::strtoll(line.c_str(), &endp, 10);
  if (*endp) fail("bad INT");
  return make_int(v);
}

PickleValue Machine::read_binfloat() {
  const uint8_t* b = take(8);
  uint64_t u = 0;
  for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
  auto v = make(Kind::Float);
  std::memcpy(&v->f, &u, 8);
  return v;
}

bool Machine::text_op(uint8_t op) {
  switch (op) {
    case 'X':
    case 'T':
      stack_.push_back(make_named(Kind::String, read_string(read_le<uint32_t>())));
      return true;
    case 0x8c:
    case 'U':
      stack_.push_back(make_named(Kind::String, read_string(read_le<uint8_t>())));
      return true;
    case 0x8d:
      stack_.push_back(make_named(Kind::String, read_string(read_le<uint64_t>())));
      return true;
    case 'B':
      stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint32_t>())));
      return true;
    case 'C':
      stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint8_t>())));
      return true;
    case 0x8e:
      stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint64_t>())));
      return true;
    default:
      return false;
  }
}

// TUPLE / LIST / DICT from the mark.
PickleValue Machine::container_from_mark(uint8_t op) {
  auto items = pop_to_mark();
  if (op == 'd') {
    auto d = make(Kind::Dict);
    set_items(d, items);
    return d;
  }
  auto v = make(op == 't' ? Kind::Tuple : Kind::List);
  for (const auto& item : items) nest(v, item);
  v->items = std::move(items);
  return v;
}

PickleValue Machine::small_tuple(size_t n) {
  auto v = make(Kind::Tuple);
  v->items.resize(n);
  for (size_t k = n; k-- > 0;) {
    v->items[k] = pop();
    nest(v, v->items[k]);
  }
  return v;
}

bool Machine::container_op(uint8_t op) {
  switch (op) {
    case '}':
      stack_.push_back(make(Kind::Dict));
      return true;
    case ']':
      stack_.push_back(make(Kind::List));
      return true;
    case ')':
      stack_.push_back(make(Kind::Tuple));
      return true;
    case 0x8f:  // EMPTY_SET
      stack_.push_back(make(Kind::Opaque));
      return true;
    case 't':
    case 'l':
    case 'd':
      stack_.push_back(container_from_mark(op));
      return true;
    case 0x85:
    case 0x86:
    case 0x87:  // TUPLE1..3
      stack_.push_back(small_tuple(op - 0x84));
      return true;
    default:
      return fill_op(op);
  }
}

// SETITEM(S) / APPEND(S): into the container below.
bool Machine::fill_op(uint8_t op) {
  switch (op) {
    case 's': {
      auto value = pop();
      auto key = pop();
      set_items(top(), {key, value});
      return true;
    }
    case 'u': {
      auto items = pop_to_mark();
      set_items(top(), items);
      return true;
    }
    case 'a': {
      auto value = pop();
      append_items(top(), {value});
      return true;
    }
    case 'e': {
      auto items = pop_to_mark();
      append_items(top(), items);
      return true;
    }
    default:
      return false;
  }
}

bool Machine::memo_op(uint8_t op) {
  switch (op) {
    case 'q':  // BINPUT
      memo_put(read_le<uint8_t>());
      return true;
    case 'r':  // LONG_BINPUT
      memo_put(read_le<uint32_t>());
      return true;
    case 0x94:  // MEMOIZE
      memo_put(memo_.size());
      return true;
    case 'h':  // BINGET
      stack_.push_back(memo_get(read_le<uint8_t>()));
      return true;
    case 'j':  // LONG_BINGET
      stack_.push_back(memo_get(read_le<uint32_t>()));
      return true;
    default:
      return false;
  }
}

bool Machine::object_op(uint8_t op) {
  switch (op) {
    case 'c': {  // GLOBAL
      std::string module = read_line();
      std::string name = read_line();
      stack_.push_back(global(module + "." + name));
      return true;
    }
    case 0x93: {  // STACK_GLOBAL
      auto name = pop();
      auto module = pop();
      if (name->kind != Kind::String || module->kind != Kind::String) fail("STACK_GLOBAL needs strings");
      stack_.push_back(global(module->s + "." + name->s));
      return true;
    }
    case 'Q':  // BINPERSID
      stack_.push_back(persistent_load(pop()));
      return true;
    case 'R': {  // REDUCE
      auto args = pop();
      auto callable = pop();
      stack_.push_back(reduce(callable, args));
      return true;
    }
    case 0x81: {  // NEWOBJ: an instance of an allowed class is an Opaque value
      pop();
      auto cls = pop();
      stack_.push_back(cls->refused ? cls : make_named(Kind::Opaque, cls->s));
      return true;
    }
    case 'b':  // BUILD: object state (OrderedDict._metadata, ...) is not needed
      pop();
      return true;
    default:
      return false;
  }
}

}  // namespace vitslim::model::pickle_detail
