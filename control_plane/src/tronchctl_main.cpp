#include "cli.hpp"

int main(int argc, char** argv) { return tronch::cp::cli_main(argc, argv); }
