# `cmake --install build [--prefix /usr]` (DESTDIR honoured): the layout of Debian's own nginx
# module packages, documented in docs/operator-guide.md ("Installing into an existing nginx").
#   <prefix>/lib/nginx/modules/ngx_http_tronch_module.so      (Debian: /usr/lib/nginx/modules)
#   /etc/nginx/modules-available/mod-http-tronch.conf          load_module modules/...so;
#   /etc/nginx/modules-enabled/50-mod-http-tronch.conf -> ../modules-available/mod-http-tronch.conf
#   /etc/nginx/conf.d/tronch.conf                               http-level settings (zone, Redis, ...)
#   <prefix>/bin/tronchd, <prefix>/bin/tronchctl
#   <prefix>/share/doc/tronch/                                  guide, examples (component "doc")
# /etc/nginx is absolute (nginx's conf path does not move with the prefix); DESTDIR still applies.
set(TRONCH_NGINX_MODULES_DIR "lib/nginx/modules" CACHE STRING
    "Where the .so goes, relative to the install prefix (Debian's nginx: /usr/lib/nginx/modules)")
set(TRONCH_NGINX_CONF_DIR "/etc/nginx" CACHE PATH "nginx's configuration directory")

if(TRONCH_BUILD_MODULE)
  install(FILES ${PROJECT_BINARY_DIR}/ngx_module/ngx_http_tronch_module.so
          DESTINATION ${TRONCH_NGINX_MODULES_DIR}
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  install(FILES ${PROJECT_SOURCE_DIR}/nginx_conf/mod-http-tronch.conf
          DESTINATION ${TRONCH_NGINX_CONF_DIR}/modules-available)
  # 50-: Debian's number for a module that needs no other dynamic module loaded before it
  # (10- is ndk, which lua needs first; 70- is for modules that need mod-stream).
  install(CODE "
    set(_enabled \"\$ENV{DESTDIR}${TRONCH_NGINX_CONF_DIR}/modules-enabled\")
    file(MAKE_DIRECTORY \"\${_enabled}\")
    file(CREATE_LINK ../modules-available/mod-http-tronch.conf \"\${_enabled}/50-mod-http-tronch.conf\" SYMBOLIC)
    message(STATUS \"Installing: \${_enabled}/50-mod-http-tronch.conf (symlink)\")")
  install(FILES ${PROJECT_SOURCE_DIR}/nginx_conf/tronch.conf DESTINATION ${TRONCH_NGINX_CONF_DIR}/conf.d)
endif()

if(TARGET tronchd)
  install(TARGETS tronchd tronchctl RUNTIME DESTINATION bin)
endif()

install(FILES ${PROJECT_SOURCE_DIR}/docs/operator-guide.md ${PROJECT_SOURCE_DIR}/nginx_conf/tronch-api-site.conf
        DESTINATION share/doc/tronch COMPONENT doc)
