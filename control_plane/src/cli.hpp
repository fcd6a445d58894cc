// tronchctl / `tronchd keys ...`: the operator CLI over the REST API.
#pragma once

namespace tronch::cp {

// argv[0] is the program name; the rest: [--url U] [--token T] [--json] keys <command> ...
int cli_main(int argc, char** argv);

}  // namespace tronch::cp
