/*
 * route_table.h - `moe route --data --table`: the routing statistics of
 * route_data_run (the JSON of docs/ROUTING.md) as plain-text tables for a
 * terminal: expert load per MoE layer, and per layer the domain x expert
 * shares with I(domain; expert).
 */
#ifndef MOE_CLI_ROUTE_TABLE_H
#define MOE_CLI_ROUTE_TABLE_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Print the tables of a "mode": "data" object to f; top_tokens > 0 also
 * lists that many top tokens per expert of the last MoE layer. 0, or -1
 * when root lacks a key the tables need (nothing useful printed then). */
int route_table_print(FILE *f, const cJSON *root, int top_tokens);

#endif
